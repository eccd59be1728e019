"""Reprocess with versions against real parts: the shipped ONNX model and a re-signed copy of
it under a new version, the extract pool, SQLite and PostgreSQL; stop and resume; delete."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from thunderline.config import Settings
from thunderline.errors import ConfigError
from thunderline.ml.trust import sign_folder
from thunderline.search.lifecycle import check as index_check
from thunderline.sources.reprocess import Reprocessor, RunInfo
from thunderline.sources.runner import sync_once
from thunderline.sources.scan import parse_source
from thunderline.voxel.lifecycle import check_references
from thunderline.voxel.store import VoxelStore
from thunderline.voxel.tables import voxel_results

from ...fixtures.models.signed import throwaway_key

REPO = Path(__file__).resolve().parents[3]
OLD = 1_700_000_000.0


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
        (root / name).touch()
    import os

    for path in root.iterdir():
        os.utime(path, (OLD, OLD))
    return root


def _resigned_copy(tmp_path: Path, model: str, version: str) -> tuple[Path, Path]:
    """A copy of the shipped model folder and registry with ``model`` under ``version``,
    signed with a throwaway key; (model dir, public key)."""
    target = tmp_path / "models-next"
    target.mkdir(mode=0o755)
    registry = (REPO / "models" / "registry.toml").read_text("utf-8")
    block = re.compile(rf'(name = "{model}"\n(?:.*\n)*?version = )"[^"]+"')
    assert block.search(registry)
    (target / "registry.toml").write_text(block.sub(rf'\1"{version}"', registry, count=1))
    shutil.copytree(REPO / "models" / model, target / model)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    private, public = throwaway_key(tmp_path / "keys")
    sign_folder(target / model, private)
    return target, public


def _run(worker: Reprocessor, run_id: str, *, stop_after: int | None = None) -> RunInfo:
    async def go() -> RunInfo:
        stop = asyncio.Event()
        seen: list[int] = []

        def on_progress(info: RunInfo) -> None:
            seen.append(info.finished)
            if stop_after is not None and info.finished >= stop_after:
                stop.set()

        return await worker.run(run_id, batch=1, on_progress=on_progress, stop=stop)

    return asyncio.run(go())


def test_infer_again_with_a_resigned_model_version_keeps_both_results(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    base: dict[str, Any] = {
        "onnx_enabled": True,
        "onnx_model_dir": REPO / "models",
        "onnx_threadpool": 1,
        "source_settle_s": 0.5,
    }
    settings = make_settings(**base)
    images = {
        f"{n}.png": (REPO / "examples" / f"fashion-mnist-{n}.png").read_bytes()
        for n in ("bag", "trouser", "sneaker")
    }
    tree = _tree(tmp_path / "in", images)
    report = asyncio.run(sync_once(settings, parse_source(str(tree))))
    assert report.voxels == 3

    next_dir, public = _resigned_copy(tmp_path, "image_classifier", "2.1.0")
    later = make_settings(**{**base, "onnx_model_dir": next_dir, "model_public_key": public})
    with VoxelStore(later) as store:
        worker = Reprocessor(later, store)
        with pytest.raises(ConfigError, match=r"not 9\.9"):
            worker.check("infer", "image_classifier@9.9")
        with pytest.raises(ConfigError, match="NAME@VERSION"):
            worker.check("infer", "image_classifier")

        dry = worker.dry_run("infer", "", "image_classifier@2.1.0")
        assert (dry.matching, dry.with_result, dry.already) == (3, 3, 0)
        assert dry.producers == {"image_classifier@2.0.0": 3}

        run_id = worker.start("infer", "", "image_classifier@2.1.0")
        stopped = _run(worker, run_id, stop_after=1)  # as if Ctrl-C after the first voxel
        assert stopped.state == "running" and stopped.counts == {"done": 1, "pending": 2}
        done = _run(worker, run_id)  # --resume
        assert done.state == "done" and done.counts == {"done": 3}
        assert _run(worker, run_id).counts == {"done": 3}  # a finished run does nothing more

        for voxel_id in store.iter_ids():
            versions = worker.versions(voxel_id)["infer"]
            assert [(v.seq, v.producer, v.current) for v in versions] == [
                (1, "image_classifier@2.0.0", False),
                (2, "image_classifier@2.1.0", True),
            ]
            old, new = versions
            assert old.run_id is None and new.run_id == run_id
            assert old.event_id == store.get(voxel_id).event_id  # lineage: the sealed result
            assert new.result["version"] == "2.1.0" and new.result["top_k"]
            assert new.result["top_k"][0]["label"] == old.result["top_k"][0]["label"]
            assert worker.recorder.set_current(voxel_id, "infer", 1)
            assert worker.results.current(store.get(voxel_id), "infer").seq == 1  # type: ignore[union-attr]
        assert index_check(store, list(store.iter_ids())) == []  # the rows moved with it

        again = worker.dry_run("infer")  # the current pointers were moved back
        assert again.producers == {"image_classifier@2.0.0": 3}

        assert all(check.ok for check in store.verify_all())
        assert check_references(store) == []
        victim = next(iter(store.iter_ids()))
        store.delete([victim], actor="test", reason="cascade")
        with store.engine.connect() as conn:
            left = conn.scalar(
                select(func.count())
                .select_from(voxel_results)
                .where(voxel_results.c.voxel_id == victim)
            )
        assert left == 0
        assert check_references(store) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_extract_again_keeps_versions_on_each_database(
    backend: str,
    tmp_path: Path,
    settings_on: Callable[..., Settings],
) -> None:
    settings = settings_on(backend, source_settle_s=0.5)  # code: extract + package
    tree = _tree(
        tmp_path / "in",
        {
            "a.py": (REPO / "examples" / "colorsys.py").read_bytes(),
            "b.sh": (REPO / "examples" / "zgrep.sh").read_bytes(),
        },
    )
    assert asyncio.run(sync_once(settings, parse_source(str(tree)))).voxels == 2
    with VoxelStore(settings) as store:
        worker = Reprocessor(settings, store)
        with pytest.raises(ConfigError, match="--model applies"):
            worker.check("extract", "x@1")
        first = worker.start("extract", "name:a.py")
        info = _run(worker, first)
        assert info.total == 1 and info.counts == {"done": 1}
        second = _run(worker, worker.start("extract"))
        assert second.counts == {"done": 2}
        a = next(v for v in store.iter_ids() if store.get(v).traits["artifact"]["name"] == "a.py")
        versions = worker.versions(a)["extract"]
        assert [v.seq for v in versions] == [1, 2, 3] and [v.current for v in versions] == [
            False,
            False,
            True,
        ]
        assert len({v.producer for v in versions}) == 1  # the same extractor each time
        assert versions[-1].result["text_ref"] == versions[0].result["text_ref"]
        assert all(check.ok for check in store.verify_all())
        assert check_references(store) == []


def test_a_text_only_a_result_version_names_is_collected_with_its_voxel(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(source_settle_s=0.5)
    tree = _tree(
        tmp_path / "in",
        {
            "a.py": (REPO / "examples" / "colorsys.py").read_bytes(),
            "b.sh": (REPO / "examples" / "zgrep.sh").read_bytes(),
        },
    )
    assert asyncio.run(sync_once(settings, parse_source(str(tree)))).voxels == 2
    with VoxelStore(settings) as store:
        worker = Reprocessor(settings, store)
        a, b = sorted(store.iter_ids(), key=lambda v: store.get(v).traits["artifact"]["name"])
        # what a newer extractor would leave: a text object that only a result version names
        only_a = store.objects.put_bytes(b"text only a's new result names\n").sha256
        shared = store.objects.put_bytes(b"text both new results name\n").sha256
        for voxel_id, texts in ((a, (only_a, shared)), (b, (shared,))):
            voxel = store.get(voxel_id)
            for n, sha in enumerate(texts):
                result = {**voxel.traits["extract"], "text_ref": f"sha256:{sha}"}
                worker.results.add(voxel, "extract", result, run_id=f"run-{n}", event_id=f"e-{n}")
        assert check_references(store) == []
        store.delete([a], actor="test", reason="text collection")
        assert not store.objects.exists(only_a)  # named by a's versions only: collected
        assert store.objects.exists(shared)  # b's current result still names it
        assert check_references(store) == []
        assert all(check.ok for check in store.verify_all())


def test_a_killed_reprocess_process_resumes_with_nothing_done_twice(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from thunderline.sources.reprocess import ReprocessRuns

    settings = make_settings(source_settle_s=0.5)
    files = {
        f"f{i}.py": (REPO / "examples" / "colorsys.py").read_bytes() + f"# {i}\n".encode()
        for i in range(40)
    }
    tree = _tree(tmp_path / "in", files)
    assert asyncio.run(sync_once(settings, parse_source(str(tree)))).voxels == 40
    env = {**os.environ, "TL_HOME": str(settings.home)}
    cli = [sys.executable, "-c", "from thunderline.cli import main; main()", "reprocess"]
    first = subprocess.Popen(
        [*cli, "--stage", "extract", "--batch", "1", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_id = None
    with ReprocessRuns(settings) as runs:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            started = runs.runs()
            if started and started[0].counts.get("done", 0) >= 1:
                run_id = started[0].id
                first.send_signal(signal.SIGKILL)  # mid-run, no clean-up of any kind
                break
            time.sleep(0.05)
        first.wait(30)
        assert run_id is not None
        killed = runs.get(run_id)
        assert killed is not None and killed.state == "running" and killed.counts.get("pending")
    resumed = subprocess.run(
        [*cli, "--resume", run_id, "--json"], env=env, capture_output=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    info = json.loads(resumed.stdout.decode().strip().splitlines()[-1])
    assert info["state"] == "done" and info["counts"] == {"done": 40}
    with VoxelStore(settings) as store:
        worker = Reprocessor(settings, store)
        for voxel_id in store.iter_ids():
            versions = worker.versions(voxel_id)["extract"]
            assert [(v.seq, v.run_id) for v in versions] == [(1, None), (2, run_id)]


def test_a_dry_run_refuses_a_model_the_real_run_refuses(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """``--dry-run --model`` checks the pin as the run does: same error, exit 2, no run made."""
    import os
    import subprocess
    import sys

    from thunderline.nlp.stage import pipeline_version
    from thunderline.sources.reprocess import ReprocessRuns

    settings = make_settings(onnx_enabled=True, onnx_model_dir=REPO / "models")
    spacy = settings.spacy.model
    have = pipeline_version(spacy)
    assert have not in (None, "?")
    env = {
        **os.environ,
        "TL_HOME": str(settings.home),
        "TL_ONNX_ENABLED": "true",
        "TL_ONNX_MODEL_DIR": str(REPO / "models"),
    }
    cli = [sys.executable, "-m", "thunderline.cli", "reprocess"]
    cases = [
        (["--stage", "nlp", "--model", "no_such_pipeline@1.0"], "model_missing"),
        (["--stage", "nlp", "--model", f"{spacy}@0.0.1"], f"version {have} here, not 0.0.1"),
        (["--stage", "infer", "--model", "no_such_model@1"], "not in the registry"),
        (["--stage", "infer", "--model", "image_classifier@9.9"], "not 9.9"),
    ]
    for args, expected in cases:
        outputs = []
        for dry in (["--dry-run"], []):
            done = subprocess.run(
                [*cli, *dry, *args], env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 2, (args, dry, done.stdout, done.stderr)
            assert expected in " ".join(done.stderr.split()), (args, dry, done.stderr)
            outputs.append(" ".join(done.stderr.split()))
        assert outputs[0] == outputs[1]  # the same error, dry or not
    with ReprocessRuns(settings) as runs:
        assert runs.runs() == []  # refused before anything was planned
    with VoxelStore(settings) as store:
        assert Reprocessor(settings, store).check("nlp", f"{spacy}@{have}") is not None
