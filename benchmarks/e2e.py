"""End to end: the 1,000-file corpus through every stage, against the bottleneck stage's raw library.

**Ours** (a child process, so its memory is its own): the default runtime with every stage on
(Magika classify, spaCy NLP in its worker pool, ONNX image inference, voxels on SQLite with the
local object store), fed the corpus of :mod:`corpus` (1,000 real files from this machine). It
reports artifacts/s (terminal records, archive members included), per-stage busy time (the sum
of ``thunderline_stage_batch_duration_seconds`` per stage: batch-seconds, concurrent batches
counted twice), the peak RSS of every process (the parent and each spaCy worker, sampled every
0.2 s), and the RSS of all of them after the first 200 and after the last 200 files.

**Baseline** (another child, after ours, on the same shares): each stage's raw library on the
artifacts that stage really handled in our run -- ``Magika.identify_paths`` in chunks of 16 over
every file; ``nlp.pipe(n_process=2)`` over the texts our NLP stage analysed (extracted before
the clock starts); ``InferenceSession.run`` over the image tensors our infer stage ran
(preprocessed before the clock; best of batch 1 and 8); a plain ``executemany`` of our voxel
rows into a fresh SQLite table. The slowest of the four is the bottleneck; a perfect pipeline
would finish in its time.

``ratio`` = bottleneck raw time / our wall time (goal >= 0.7); ``rss_growth`` = total RSS after
the last 200 files / after the first 200 - 1 (goal <= 0.10).

Usage: ``.venv/bin/python benchmarks/e2e.py [--files 1000]``; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHUNK = 16


class RssSampler:
    """Peak RSS per process (this one and its children), sampled in a thread."""

    def __init__(self, interval_s: float = 0.2) -> None:
        import psutil

        self.me = psutil.Process()
        self.interval_s = interval_s
        self.peaks: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def snapshot(self) -> dict[str, float]:
        """RSS of this process and each child now (MB), by ``name[pid]``."""
        out: dict[str, float] = {}
        for proc in [self.me, *self.me.children(recursive=True)]:
            try:
                name = "parent" if proc.pid == self.me.pid else _proc_name(proc)
                out[f"{name}[{proc.pid}]"] = round(proc.memory_info().rss / 2**20, 1)
            except Exception:
                continue
        return out

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for proc in [self.me, *self.me.children(recursive=True)]:
                try:
                    rss = proc.memory_info().rss
                    name = "parent" if proc.pid == self.me.pid else _proc_name(proc)
                except Exception:
                    continue
                old = self.peaks.get(proc.pid)
                if old is None or rss > old[1]:
                    self.peaks[proc.pid] = (name, rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> list[dict[str, Any]]:
        return [
            {"pid": pid, "process": name, "peak_rss_mb": round(rss / 2**20, 1)}
            for pid, (name, rss) in sorted(self.peaks.items())
        ]


def _proc_name(proc: Any) -> str:
    cmd = " ".join(proc.cmdline())
    return "nlp-worker" if "thunderline.nlp.worker" in cmd else cmd[:60]


def run_ours(paths: list[Path], home: Path) -> dict[str, Any]:
    from thunderline.classify.walk import Candidate
    from thunderline.config import load_settings
    from thunderline.events import CloudEvent
    from thunderline.obs import metrics
    from thunderline.runtime import Runtime, ingest_event

    settings = load_settings(
        home=home,
        enable_ml_pipeline=True,
        onnx_enabled=True,
        onnx_model_dir=ROOT / "models",
    )
    ends: list[dict[str, Any]] = []  # a small summary per record (not the events themselves)
    files_done: set[str] = set()
    marks: dict[str, dict[str, float]] = {}
    sampler = RssSampler()
    n = len(paths)

    def on_terminal(event: CloudEvent) -> None:
        data = event.data
        artifact = data.get("artifact") or {}
        cls = data.get("classification") or {}
        ends.append(
            {
                "dlq": event.is_dlq,
                "reason": data.get("reason"),
                "sha": artifact.get("sha256"),
                "nlp": [artifact.get("sha256"), cls.get("label"), cls.get("mime")]
                if "nlp" in data
                else None,
                "image": artifact.get("sha256") if "inference" in data else None,
            }
        )
        files_done.add(event.correlationid)
        done = len(files_done)
        if done == 200 and "first_200" not in marks:
            marks["first_200"] = sampler.snapshot()
        if done == n and "last_200" not in marks:
            marks["last_200"] = sampler.snapshot()

    async def go() -> float:
        runtime = Runtime(settings, on_terminal=on_terminal)
        async with runtime:
            started = time.perf_counter()
            for path in paths:
                await runtime.submit(ingest_event(Candidate(path, path.parent)))
            await runtime.wait_idle()
            return time.perf_counter() - started

    with sampler:
        wall = asyncio.run(go())
    busy = {}
    for stage in ("classify", "nlp", "infer", "package"):
        busy[stage] = round(
            metrics.sample("thunderline_stage_batch_duration_seconds_sum", {"stage": stage}), 2
        )
    nlp_share = [e["nlp"] for e in ends if e["nlp"] is not None]
    image_share = [e["image"] for e in ends if e["image"] is not None]
    first = sum(marks.get("first_200", {}).values())
    last = sum(marks.get("last_200", {}).values())
    return {
        "files": n,
        "artifacts": len(ends),
        "voxels": sum(1 for e in ends if not e["dlq"]),
        "dlq": sum(1 for e in ends if e["dlq"]),
        "dlq_reasons": sorted({str(e["reason"]) for e in ends if e["dlq"]}),
        "wall_s": round(wall, 2),
        "artifacts_per_s": round(len(ends) / wall, 2),
        "stage_busy_s": busy,
        "processes": sampler.report(),
        "rss_after_first_200_mb": round(first, 1),
        "rss_after_last_200_mb": round(last, 1),
        "rss_by_process_after_first_200_mb": marks.get("first_200", {}),
        "rss_by_process_after_last_200_mb": marks.get("last_200", {}),
        "rss_growth": round(last / first - 1, 3) if first else None,
        "nlp_share": nlp_share,
        "image_share": image_share,
    }


def run_raw(paths: list[Path], home: Path, ours: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort
    from sqlalchemy import Column, MetaData, Table, create_engine, insert, select

    from thunderline.config import load_settings
    from thunderline.extract.base import ExtractContext
    from thunderline.extract.registry import extractor_for
    from thunderline.ml import ModelRegistry, SessionConfig
    from thunderline.ml.model import resolve_providers, session_options
    from thunderline.ml.preprocess import image_tensor
    from thunderline.objects.local import LocalObjectStore
    from thunderline.voxel.tables import voxels

    settings = load_settings(home=home, onnx_model_dir=ROOT / "models")
    store = LocalObjectStore(home / "objects")
    times: dict[str, float] = {}
    counts: dict[str, int] = {}

    from magika import Magika

    magika = Magika()
    t0 = time.perf_counter()
    for i in range(0, len(paths), CHUNK):
        magika.identify_paths(paths[i : i + CHUNK])
    times["classify"] = time.perf_counter() - t0
    counts["classify"] = len(paths)
    del magika

    import spacy

    texts = []
    for sha, label, mime in ours["nlp_share"]:  # not timed: extraction in-process, as text
        path = store.local_path(sha)
        assert path is not None
        ctx = ExtractContext(label=label, mime=mime, max_text_bytes=settings.nlp_max_text_bytes)
        texts.append(extractor_for(label, "", True).run(path, ctx).text)
    nlp = spacy.load(settings.spacy_model)
    nlp.max_length = max([len(t) for t in texts] + [1_000_000]) + 1
    t0 = time.perf_counter()
    for _ in nlp.pipe(texts, n_process=2, batch_size=32):
        pass
    times["nlp"] = time.perf_counter() - t0
    counts["nlp"] = len(texts)
    del nlp

    registry = ModelRegistry.from_settings(settings)
    entry = registry.entry(settings.onnx_image_model)
    config = SessionConfig.from_settings(settings)
    session = ort.InferenceSession(
        registry.path_of(entry).read_bytes(),
        sess_options=session_options(config),
        providers=resolve_providers(config.provider),
    )
    tensors = [image_tensor(store.get_bytes(sha), entry) for sha in ours["image_share"]]
    name = session.get_inputs()[0].name
    best = float("inf")
    for size in (1, 8):
        t0 = time.perf_counter()
        for i in range(0, len(tensors), size):
            session.run(None, {name: np.concatenate(tensors[i : i + size], axis=0)})
        best = min(best, time.perf_counter() - t0)
    times["infer"] = best if tensors else 0.0
    counts["infer"] = len(tensors)

    ours_db = create_engine(f"sqlite:///{home / 'thunderline.db'}")
    with ours_db.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(voxels)).mappings()]
    ours_db.dispose()
    raw_db = create_engine(f"sqlite:///{home / 'raw.db'}")
    md = MetaData()
    table = Table(
        "raw_voxels",
        md,
        *[Column(c.name, c.type, primary_key=c.primary_key) for c in voxels.columns],
    )
    md.create_all(raw_db)
    t0 = time.perf_counter()
    for i in range(0, len(rows), 64):
        with raw_db.begin() as conn:
            conn.execute(insert(table), rows[i : i + 64])
    times["package"] = time.perf_counter() - t0
    counts["package"] = len(rows)
    raw_db.dispose()
    return {
        "stage_raw_s": {k: round(v, 2) for k, v in times.items()},
        "stage_items": counts,
    }


def child(mode: str, listing: Path, home: Path, ours_json: Path | None) -> None:
    paths = [Path(p) for p in listing.read_text().splitlines()]
    if mode == "ours":
        result = run_ours(paths, home)
    else:
        assert ours_json is not None
        result = run_raw(paths, home, json.loads(ours_json.read_text()))
    print(json.dumps(result))


def _run_child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--child", choices=["ours", "raw"])
    parser.add_argument("--listing", type=Path)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--ours-json", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.listing, args.home, args.ours_json)
        return

    sys.path.insert(0, str(HERE))
    from corpus import build_corpus

    paths = build_corpus(HERE / ".corpus", n=args.files)
    work = Path(tempfile.mkdtemp(prefix="tl-bench-e2e-"))
    try:
        listing = work / "listing.txt"
        listing.write_text("\n".join(str(p) for p in paths))
        home = work / "home"
        ours = _run_child(["--child", "ours", "--listing", str(listing), "--home", str(home)])
        print(f"ours: { {k: v for k, v in ours.items() if 'share' not in k} }", file=sys.stderr)
        ours_json = work / "ours.json"
        ours_json.write_text(json.dumps(ours))
        raw = _run_child(
            [
                "--child",
                "raw",
                "--listing",
                str(listing),
                "--home",
                str(home),
                "--ours-json",
                str(ours_json),
            ]
        )
        print(f"raw: {raw}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bottleneck = max(raw["stage_raw_s"], key=lambda k: raw["stage_raw_s"][k])
    bottleneck_s = raw["stage_raw_s"][bottleneck]
    ratio = bottleneck_s / ours["wall_s"]
    shares = {"nlp_texts": len(ours.pop("nlp_share")), "images": len(ours.pop("image_share"))}
    growth = ours["rss_growth"]
    print(
        json.dumps(
            {
                "name": "e2e",
                "baseline": {
                    "what": "each stage's raw library on the share of the corpus it handled",
                    **raw,
                    "bottleneck": bottleneck,
                    "bottleneck_artifacts_per_s": round(ours["artifacts"] / bottleneck_s, 2),
                },
                "ours": {
                    "what": "default runtime, every stage on (Magika, spaCy, ONNX, SQLite voxels)",
                    **ours,
                    "shares": shares,
                },
                "ratio": round(ratio, 3),
                "goal": 0.7,
                "rss_growth_goal": 0.10,
                "met": ratio >= 0.7 and growth is not None and growth <= 0.10,
                "unit": "ratio: bottleneck stage raw time / our wall time (artifacts/s ratio)",
                "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
            }
        )
    )


if __name__ == "__main__":
    main()
