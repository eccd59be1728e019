"""A reprocessed result is what search finds: the voxel's index row is rewritten from its current
result versions in the transaction that writes the version, or that moves the current pointer
(real spaCy, ONNX, SQLite and PostgreSQL), and ``index rebuild`` / ``voxels verify --all`` agree
with it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from thunderline.config import Settings
from thunderline.search.engine import Searcher
from thunderline.search.lifecycle import check, rebuild
from thunderline.sources.reprocess import Reprocessor, RunInfo
from thunderline.sources.runner import sync_once
from thunderline.sources.scan import parse_source
from thunderline.voxel.store import VoxelStore

REPO = Path(__file__).resolve().parents[3]
OLD = 1_700_000_000.0
FIRST = "Angela Merkel met Emmanuel Macron in Paris to talk about the budget.\n"
SECOND = "Barack Obama gave a speech in Chicago about the Microsoft merger.\n"


def _matches(store: VoxelStore, query: str) -> set[str]:
    return {v for page in Searcher(store.engine).iter_matches(query) for v in page}


def _run(worker: Reprocessor, stage: str, query: str = "", model: str | None = None) -> RunInfo:
    run_id = worker.start(stage, query, model)
    return asyncio.run(worker.run(run_id))


def _entities(result: dict[str, Any]) -> set[str]:
    return {e["text"] for e in result.get("entities") or [] if e.get("label") != "CARDINAL"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_search_finds_the_current_result_after_a_reprocess(
    backend: str,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    request: pytest.FixtureRequest,
) -> None:
    import os

    base: dict[str, Any] = {"source_settle_s": 0.5, "spacy_workers": 1}
    if backend == "postgresql":
        base["database_url"] = request.getfixturevalue("pg_schema_url")
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "note.txt").write_text(FIRST)
    (inbox / "bag.png").write_bytes((REPO / "examples" / "fashion-mnist-bag.png").read_bytes())
    for path in inbox.iterdir():
        os.utime(path, (OLD, OLD))
    plain = make_settings(**base)  # ingested without ONNX: no model labels yet
    assert asyncio.run(sync_once(plain, parse_source(str(inbox)))).voxels == 2
    onnx = make_settings(**base, onnx_enabled=True, onnx_model_dir=REPO / "models")

    with VoxelStore(onnx) as store:
        worker = Reprocessor(onnx, store)
        ids = {store.get(v).traits["artifact"]["name"]: v for v in store.iter_ids()}
        note, bag = ids["note.txt"], ids["bag.png"]
        old = _entities(store.get(note).traits["nlp"])
        assert old and all(_matches(store, f'entity:"{e}"') == {note} for e in old)
        assert _matches(store, "model:image_classifier") == set()

        # what a newer extractor would leave: another text for the note (the version and its
        # index row in one transaction: the body is the new text at once)
        voxel = store.get(note)
        sha = store.objects.put_bytes(SECOND.encode()).sha256
        text_result = {**voxel.traits["extract"], "text_ref": f"sha256:{sha}"}
        worker.recorder.record(voxel, "extract", text_result, run_id="extractor-2", event_id="e")
        assert _matches(store, "Obama") == {note}
        assert _matches(store, "Merkel") == {note}  # its entities are still the sealed ones

        # NLP again (real spaCy) reads the current text: the new entities replace the old
        nlp = _run(worker, "nlp", "name:note.txt")
        assert nlp.counts == {"done": 1}
        current = worker.results.current(store.get(note), "nlp")
        assert current is not None and current.run_id == nlp.id
        new = _entities(current.result)
        assert new and not new & old, (old, new)
        for entity in new:
            assert _matches(store, f'entity:"{entity}"') == {note}
        for entity in old:
            assert _matches(store, f'entity:"{entity}"') == set()
        assert _matches(store, "Merkel") == set()

        # inference again (the shipped ONNX model): its label is now a model: term
        infer = _run(worker, "infer", "name:bag.png")
        assert infer.counts == {"done": 1}
        label = worker.results.current(store.get(bag), "infer").result["top_k"][0]["label"]  # type: ignore[union-attr]
        assert _matches(store, f"model:image_classifier={label}") == {bag}

        # the index agrees with the current versions: verify finds nothing stale, a rebuild
        # rewrites nothing
        assert check(store, [note, bag]) == []
        report = rebuild(store)
        assert (report.written, report.current) == (0, 2)

        # moving the current pointer back rewrites the row with it: the old entities at once
        assert worker.recorder.set_current(note, "nlp", 1)
        assert all(_matches(store, f'entity:"{e}"') == {note} for e in old)
        assert all(_matches(store, f'entity:"{e}"') == set() for e in new)
        assert check(store, [note]) == []
        assert rebuild(store).written == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_moving_the_current_version_rewrites_the_search_row(
    backend: str,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``set_current`` moves the pointer and the voxel's index row in one transaction: search
    answers what the now current version says, and ``voxels verify --all`` stays clean."""
    import os

    from typer.testing import CliRunner

    from thunderline.cli import app

    base: dict[str, Any] = {"source_settle_s": 0.5}  # code: extract + package, no ML stage
    if backend == "postgresql":
        base["database_url"] = request.getfixturevalue("pg_schema_url")
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.py").write_bytes((REPO / "examples" / "colorsys.py").read_bytes())  # says YIQ
    os.utime(inbox / "a.py", (OLD, OLD))
    settings = make_settings(**base)
    assert asyncio.run(sync_once(settings, parse_source(str(inbox)))).voxels == 1

    with VoxelStore(settings) as store:
        worker = Reprocessor(settings, store)
        (note,) = store.iter_ids()
        voxel = store.get(note)
        sha = store.objects.put_bytes(SECOND.encode()).sha256
        newer = {**voxel.traits["extract"], "text_ref": f"sha256:{sha}"}
        worker.recorder.record(voxel, "extract", newer, run_id="extractor-2", event_id="e")
        assert (_matches(store, "Obama"), _matches(store, "YIQ")) == ({note}, set())

        # back to the sealed text (version 1): the body is the old text at once
        assert worker.recorder.set_current(note, "extract", 1)
        assert worker.results.current(store.get(note), "extract").seq == 1  # type: ignore[union-attr]
        assert (_matches(store, "YIQ"), _matches(store, "Obama")) == ({note}, set())
        assert check(store, [note]) == []
        assert rebuild(store).written == 0

        # and forward again
        assert worker.recorder.set_current(note, "extract", 2)
        assert (_matches(store, "Obama"), _matches(store, "YIQ")) == ({note}, set())
        assert check(store, [note]) == []

        # no such version: nothing moves, the row is untouched
        assert not worker.recorder.set_current(note, "extract", 9)
        assert not worker.recorder.set_current(note, "nlp", 1)  # never reprocessed: no rows
        assert worker.results.current(store.get(note), "extract").seq == 2  # type: ignore[union-attr]
        assert check(store, [note]) == []

    monkeypatch.setenv("TL_HOME", str(settings.home))
    if backend == "postgresql":
        monkeypatch.setenv("TL_DATABASE_URL", base["database_url"])
    verified = CliRunner().invoke(app, ["voxels", "verify", "--all"], terminal_width=200)
    assert verified.exit_code == 0, verified.output
