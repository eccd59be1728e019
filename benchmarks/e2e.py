"""End to end: what each artifact costs in CPU-seconds, against the raw libraries doing the same work.

**Ours** (a child process, so its memory and CPU are its own): the default runtime with every
stage on (Magika classify, extraction in its worker pool, spaCy NLP in its worker pool, ONNX
image inference, voxels on SQLite with the local object store), fed the corpus of
:mod:`corpus` (1,000 real files from this machine). Its cost is the CPU-seconds (user + system)
of every process of the run from the first submission to idle: the runtime's process (all its
threads: ``RUSAGE_SELF``), its exited workers (``RUSAGE_CHILDREN``) and its live NLP and
extraction workers (``psutil``), per artifact (terminal records, archive members included).

**Raw** (another child, after ours): the libraries alone on the same work, each measured in
CPU-seconds the same way -- ``Magika.identify_paths`` (its default session) in chunks of 16 over
every file; the extraction libraries (through our extractors' ``run``, in-process, no worker
pool) on the files our extract stage handled; ``nlp.pipe`` (one process) over the texts our NLP
stage analysed; decoding plus ``InferenceSession.run`` over the payloads our infer stage ran,
per model (images and text; best of batch 1 and 8); ``executemany`` of our voxel rows (and their lineage edges) into a
fresh database with the same schema (same tables, indexes and constraints: our migrations).

``ratio`` = raw CPU-seconds / our CPU-seconds (goal >= 0.83, i.e. ours <= 1.2x the raw sum).
``stages`` pairs each stage's raw CPU with ours, from a profiled run (``--profile-files``, a
CPU-clock cProfile per thread: the cumulative CPU of each stage's thread entry points, plus
each worker process's CPU); ``profile_top`` lists where the profiled CPU went. Wall-clock
figures (``wall_ratio`` = the bottleneck stage's raw wall time / our wall time) are secondary:
on a shared 2-core machine they follow the neighbours. ``rss_growth`` = total RSS of the
process tree when the last file ended / when the 200th did - 1 (goal <= 10 %): the first 200
files are the warm-up window (the extraction worker loads its parsers as their kinds first
arrive). Each process gives freed native memory back once it has grown ``TL_MALLOC_TRIM_MB``
(docs/ARCHITECTURE.md, "Native memory"): before that, a worker kept the high-water mark of
the largest batch or file it had seen, and the end snapshot caught whichever that was (README,
"End-to-end cost", has the series before and after).
``rss_series_mb`` samples every process's RSS each 100 files and ``rss_growth_mb_by_process``
says which role the growth is in (parent, nlp-worker, extraction worker), so a figure over the
goal can be read: a leak climbs through the series, where one worker's RSS stepping up once
and then holding is a high-water mark (which a single end snapshot cannot tell apart).
``BENCH_E2E_TRACEMALLOC=1`` (a diagnostic run; its CPU figures are not comparable) adds the 15
source lines whose Python allocations in the runtime process grew most between file 200 and
the end.

Usage: ``.venv/bin/python benchmarks/e2e.py [--files 1000] [--profile-files 200]``; the last
line is one JSON object.
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
import tracemalloc
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
        self.cpu_s = 0.0  # this sampler's own CPU (its thread), kept out of our figures
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
            self.cpu_s = time.thread_time()

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


def _growth_by_role(first: dict[str, float], last: dict[str, float]) -> dict[str, float]:
    """RSS at the end minus after the first 200 files (MB), summed per role (``name[pid]``
    keys: a restarted worker's new pid counts under the same role)."""
    out: dict[str, float] = {}
    for sign, snap in ((-1, first), (1, last)):
        for key, mb in snap.items():
            role = key.split("[", 1)[0]
            out[role] = round(out.get(role, 0.0) + sign * mb, 1)
    return out


def _proc_name(proc: Any) -> str:
    """A short, machine-independent name: the module a Python child runs, else its program."""
    argv = proc.cmdline()
    cmd = " ".join(argv)
    if "thunderline.nlp.worker" in cmd:
        return "nlp-worker"
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    return Path(argv[0]).name if argv else "?"


#: Per stage: the functions (file suffix, name) whose cumulative thread CPU is that stage's
#: in-process work, and the worker processes whose CPU is the stage's too.
STAGE_ENTRIES: dict[str, list[tuple[str, str]]] = {
    "classify": [("thunderline/classify/stage.py", "_classify_batch")],
    "extract": [
        ("thunderline/extract/stage.py", "_payload_path"),
        ("thunderline/extract/stage.py", "_store"),
        ("thunderline/extract/pool.py", "extract"),
    ],
    "nlp": [("thunderline/nlp/stage.py", "_read_text"), ("thunderline/nlp/stage.py", "_analyse")],
    "infer": [("thunderline/ml/stage.py", "_prepare"), ("thunderline/ml/batcher.py", "_run")],
    "package": [("thunderline/voxel/stage.py", "_package_batch")],
}
STAGE_WORKERS = {"extract": "extract-worker", "nlp": "nlp-worker"}


STALL_S = 300.0


def pipeline_state(runtime: Any) -> dict[str, Any]:
    """What the pipeline holds now: messages open, in flight per stage, queued per topic
    (diagnostics for a stall; read from the engine's and the memory bus's internals)."""
    pipeline = runtime.pipeline
    topics = getattr(runtime.bus, "_topics", {})
    return {
        "outstanding": pipeline.outstanding,
        "in_flight": {k: len(v) for k, v in getattr(pipeline, "_in_flight", {}).items() if v},
        "queued": {k: len(t.items) for k, t in topics.items() if getattr(t, "items", None)},
        "unacked": {k: len(t.unacked) for k, t in topics.items() if getattr(t, "unacked", None)},
    }


async def wait_idle_or_stall(
    runtime: Any, done: Any, stall_s: float = STALL_S, submitting: Any = None
) -> None:
    """``runtime.wait_idle()``, with the pipeline's state on stderr every 30 s and a clear
    failure when no artifact has ended for ``stall_s`` seconds.

    ``submitting`` (the task submitting the files) is watched too: a submission blocked for
    good on a full queue is a stall like any other (it hid the classify/package deadlock)."""
    last, last_at = -1, time.monotonic()
    while True:
        try:
            if submitting is not None and not submitting.done():
                await asyncio.wait_for(asyncio.shield(submitting), 30)
            await runtime.wait_idle(timeout_s=30)
            return
        except TimeoutError:
            pass
        state = pipeline_state(runtime)
        print(f"e2e: {done()} ended; {state}", file=sys.stderr, flush=True)
        if done() != last:
            last, last_at = done(), time.monotonic()
        elif time.monotonic() - last_at > stall_s:
            if submitting is not None:
                submitting.cancel()
            raise RuntimeError(f"e2e: no artifact ended for {stall_s:.0f} s; pipeline: {state}")


def run_ours(paths: list[Path], home: Path, *, profile: bool = False) -> dict[str, Any]:
    from _cost import CpuMeter, ThreadProfiles, cumulative_s, top
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
    if os.environ.get("BENCH_E2E_SEARCH_INDEX") == "0":  # benchmarks/search_ingest.py's baseline
        import thunderline.voxel.store as store_module

        # the same pipeline with the search index off: no index rows built (no text read
        # back) nor written in the voxel's transaction
        store_module.index_voxels = lambda conn, docs: None  # type: ignore[assignment]
        store_module.search_docs_for = lambda objects, voxels, max_chars: []  # type: ignore[assignment]
    ends: list[dict[str, Any]] = []  # a small summary per record (not the events themselves)
    files_done: set[str] = set()
    marks: dict[str, dict[str, float]] = {}
    series: dict[int, dict[str, float]] = {}
    # BENCH_E2E_TRACEMALLOC=1 (a diagnostic run: its CPU figures are not comparable): the
    # runtime process's Python allocations after the first 200 files and at the end, and
    # the 15 source lines whose allocations grew most between them
    traced = os.environ.get("BENCH_E2E_TRACEMALLOC") == "1"
    heap: list[Any] = []
    if traced:
        tracemalloc.start(1)
    sampler = RssSampler()
    n = len(paths)
    meter = CpuMeter()
    profiles = ThreadProfiles()

    def on_terminal(event: CloudEvent) -> None:
        data = event.data
        artifact = data.get("artifact") or {}
        cls = data.get("classification") or {}
        what = [artifact.get("sha256"), cls.get("label"), cls.get("mime")]
        ends.append(
            {
                "dlq": event.is_dlq,
                "reason": data.get("reason"),
                "sha": artifact.get("sha256"),
                "nlp": what if "nlp" in data else None,
                "extract": what if data.get("extract") else None,
                "image": [artifact.get("sha256"), (data.get("inference") or {}).get("model")]
                if "inference" in data
                else None,
            }
        )
        files_done.add(event.correlationid)
        done = len(files_done)
        if done == min(200, n) and "first_200" not in marks:
            marks["first_200"] = sampler.snapshot()
            if traced:
                heap.append(tracemalloc.take_snapshot())
        if done % 100 == 0 and done not in series:
            series[done] = sampler.snapshot()  # RSS per process every 100 files
        if done == n and "last_200" not in marks:
            marks["last_200"] = sampler.snapshot()

    async def go() -> float:
        if profile:  # before the runtime starts its threads: only new threads are profiled
            profiles.start()
        runtime = Runtime(settings, on_terminal=on_terminal)
        async with runtime:
            sampler_cpu0 = sampler.cpu_s
            meter.start()
            started = time.perf_counter()

            async def submit_all() -> None:
                for path in paths:
                    await runtime.submit(ingest_event(Candidate(path, path.parent)))

            submitting = asyncio.create_task(submit_all())
            await wait_idle_or_stall(runtime, lambda: len(ends), submitting=submitting)
            await submitting
            wall = time.perf_counter() - started
            meter.stop()
            # the RSS sampler is the benchmark's, not the pipeline's: its CPU comes off
            sampled = sampler.cpu_s - sampler_cpu0
            meter.by_kind["parent"] -= sampled
            sampler_s.append(sampled)
        return wall

    sampler_s: list[float] = []
    with sampler:
        wall = asyncio.run(go())
    stats = profiles.stop() if profile else None
    grown: list[str] = []
    if traced and heap:
        diff = tracemalloc.take_snapshot().compare_to(heap[0], "lineno")
        grown = [str(d) for d in diff[:15]]
        tracemalloc.stop()
    busy = {}
    for stage in ("classify", "extract", "nlp", "infer", "package"):
        busy[stage] = round(
            metrics.sample("thunderline_stage_batch_duration_seconds_sum", {"stage": stage}), 2
        )
    # spaCy workers restarted during the run, by cause: a killed worker's CPU (its imports,
    # its model load and the batch it was on) is in "exited-children" and is paid again
    restarts = {
        str(m.labels.get("cause")): int(m.value)
        for family in metrics.REGISTRY.collect()
        if family.name == "thunderline_spacy_worker_restarts"
        for m in family.samples
        if m.name.endswith("_total") and m.value
    }
    first = sum(marks.get("first_200", {}).values())
    last = sum(marks.get("last_200", {}).values())
    out: dict[str, Any] = {
        "files": n,
        "artifacts": len(ends),
        "voxels": sum(1 for e in ends if not e["dlq"]),
        "dlq": sum(1 for e in ends if e["dlq"]),
        "dlq_reasons": sorted({str(e["reason"]) for e in ends if e["dlq"]}),
        "cpu": {**meter.report(), "rss_sampler_excluded_s": round(sampler_s[0], 3)},
        "wall_s": round(wall, 2),
        "artifacts_per_s": round(len(ends) / wall, 2),
        "stage_busy_s": busy,
        "nlp_worker_restarts": restarts,
        "processes": sampler.report(),
        "rss_after_first_200_mb": round(first, 1),
        "rss_after_last_200_mb": round(last, 1),
        "rss_growth": round(last / first - 1, 3) if first else None,
        "rss_series_mb": [{"files": k, **v} for k, v in sorted(series.items())],
        "rss_growth_mb_by_process": _growth_by_role(
            marks.get("first_200", {}), marks.get("last_200", {})
        ),
        **({"tracemalloc_growth_top": grown} if traced else {}),
        "nlp_share": [e["nlp"] for e in ends if e["nlp"] is not None],
        "extract_share": [e["extract"] for e in ends if e["extract"] is not None],
        "image_share": [e["image"] for e in ends if e["image"] is not None],
    }
    if stats is not None:
        by_stage = {
            stage: sum(cumulative_s(stats, where, fn) for where, fn in entries)
            for stage, entries in STAGE_ENTRIES.items()
        }
        for stage, kind in STAGE_WORKERS.items():
            by_stage[stage] += meter.by_kind.get(kind, 0.0)
        total_profiled = sum(
            tt
            for (_f, _l, _n), (_c, _nc, tt, _ct, _cl) in stats.stats.items()  # type: ignore[attr-defined]
        )
        out["profile"] = {
            "cpu_total_s": round(meter.total_s, 3),
            "python_threads_s": round(total_profiled, 3),
            "stage_cpu_s": {k: round(v, 3) for k, v in by_stage.items()},
            "workers_s": {k: round(v, 3) for k, v in meter.by_kind.items() if k != "parent"},
            "top": top(stats, 20),
            "items": {
                "classify": n,
                "extract": len(out["extract_share"]),
                "nlp": len(out["nlp_share"]),
                "infer": len(out["image_share"]),
                "package": out["voxels"],
            },
        }
    return out


def executemany_cost(source_db: Path, db: Path) -> dict[str, Any]:
    """CPU and wall of plain ``executemany`` of every row our run wrote (voxels, payloads,
    lineage, search index, outcomes) into a fresh database with our schema (created by our
    migrations, untimed), in transactions of 64 rows per table."""
    from _cost import CpuMeter, insert_rows, read_rows
    from thunderline.voxel.db import make_engine, migrate

    source = make_engine(f"sqlite:///{source_db}")
    rows = read_rows(source)
    source.dispose()
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    meter = CpuMeter().start()
    insert_rows(engine, rows)
    meter.stop()
    engine.dispose()
    return {
        "cpu_s": meter.total_s,
        "wall_s": meter.wall_s,
        "rows": {k: len(v) for k, v in rows.items()},
    }


def run_raw(paths: list[Path], home: Path, ours: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    from _cost import CpuMeter
    from thunderline.config import load_settings
    from thunderline.extract.base import ExtractContext
    from thunderline.extract.registry import extractor_for
    from thunderline.ml import ModelRegistry, SessionConfig
    from thunderline.ml.model import resolve_providers, session_options
    from thunderline.ml.preprocess import payload_input
    from thunderline.objects.local import LocalObjectStore

    settings = load_settings(home=home, onnx_model_dir=ROOT / "models")
    store = LocalObjectStore(home / "objects")
    cpu: dict[str, float] = {}
    wall: dict[str, float] = {}
    counts: dict[str, int] = {}

    from magika import Magika

    magika = Magika()  # as a user gets it: ONNX Runtime's default session options
    meter = CpuMeter().start()
    for i in range(0, len(paths), CHUNK):
        magika.identify_paths(paths[i : i + CHUNK])
    meter.stop()
    cpu["classify"], wall["classify"] = meter.total_s, meter.wall_s
    counts["classify"] = len(paths)
    del magika

    def extract(items: list[list[Any]]) -> list[str]:
        texts = []
        for sha, label, mime in items:
            path = store.local_path(sha)
            if path is None:
                continue
            ctx = ExtractContext(label=label, mime=mime, max_text_bytes=settings.nlp.max_text_bytes)
            try:
                texts.append(extractor_for(label, "", True).run(path, ctx).text)
            except Exception:
                texts.append("")
        return texts

    meter = CpuMeter().start()
    extract(ours["extract_share"])
    meter.stop()
    cpu["extract"], wall["extract"] = meter.total_s, meter.wall_s
    counts["extract"] = len(ours["extract_share"])
    texts = [t for t in extract(ours["nlp_share"]) if t]  # not timed: the NLP stage's input

    import spacy

    nlp = spacy.load(settings.spacy.model)
    nlp.max_length = max([len(t) for t in texts] + [1_000_000]) + 1
    meter = CpuMeter().start()
    for _ in nlp.pipe(texts, batch_size=32):
        pass
    meter.stop()
    cpu["nlp"], wall["nlp"] = meter.total_s, meter.wall_s
    counts["nlp"] = len(texts)
    del nlp

    registry = ModelRegistry.from_settings(settings)
    config = SessionConfig.from_settings(settings)
    by_model: dict[str, list[str]] = {}
    for sha, model in ours["image_share"]:  # every inference our run made, by model
        by_model.setdefault(model, []).append(sha)
    decode_cpu = infer_cpu = infer_wall = 0.0
    for model, shas in by_model.items():
        entry = registry.entry(model)
        session = ort.InferenceSession(
            registry.path_of(entry).read_bytes(),
            sess_options=session_options(config),
            providers=resolve_providers(config.provider),
        )
        meter = CpuMeter().start()  # decoding (Pillow / UTF-8 ids): the raw script does it too
        tensors = [payload_input(store.get_bytes(sha), entry).tensor for sha in shas]
        decode_cpu += meter.stop().total_s
        name = session.get_inputs()[0].name
        best_cpu = best_wall = float("inf")
        for size in (1, 8):
            meter = CpuMeter().start()
            for i in range(0, len(tensors), size):
                session.run(None, {name: np.concatenate(tensors[i : i + size], axis=0)})
            meter.stop()
            best_cpu, best_wall = min(best_cpu, meter.total_s), min(best_wall, meter.wall_s)
        infer_cpu += best_cpu
        infer_wall += best_wall
    cpu["infer"] = decode_cpu + infer_cpu
    wall["infer"] = infer_wall
    counts["infer"] = len(ours["image_share"])

    package = executemany_cost(home / "thunderline.db", home / "raw.db")
    cpu["package"], wall["package"] = package["cpu_s"], package["wall_s"]
    counts["package"] = sum(package["rows"].values())
    return {
        "stage_cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "stage_wall_s": {k: round(v, 2) for k, v in wall.items()},
        "stage_items": counts,
        "package_rows": package["rows"],
        "infer_decode_cpu_s": round(decode_cpu, 3),
    }


def child(mode: str, listing: Path, home: Path, ours_json: Path | None) -> None:
    sys.path.insert(0, str(HERE))
    paths = [Path(p) for p in listing.read_text().splitlines()]
    if mode in ("ours", "profile"):
        result = run_ours(paths, home, profile=mode == "profile")
    else:
        assert ours_json is not None
        result = run_raw(paths, home, json.loads(ours_json.read_text()))
    print(json.dumps(result))


def _run_child(args: list[str], timeout_s: float) -> dict[str, Any]:
    """Run a child; its whole process tree's CPU (reaped) comes back as ``tree_cpu_s``."""
    from _cost import CpuMeter

    meter = CpuMeter().start()
    try:
        proc = subprocess.run(
            [sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        tail = "\n".join(str(exc.stderr or "").strip().splitlines()[-20:])
        raise SystemExit(
            f"e2e: child {args[1]} timed out after {timeout_s:.0f} s:\n{tail}"
        ) from exc
    meter.stop()
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
        raise SystemExit(f"e2e: child {args[1]} failed (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["tree_cpu_s_incl_startup"] = round(meter.total_s, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument(
        "--profile-files", type=int, default=200, help="Files in the profiled run (0: none)."
    )
    parser.add_argument("--child", choices=["ours", "raw", "profile"])
    parser.add_argument("--listing", type=Path)
    parser.add_argument("--home", type=Path)
    parser.add_argument("--ours-json", type=Path)
    parser.add_argument("--child-timeout", type=float, default=1200.0)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.listing, args.home, args.ours_json)
        return

    sys.path.insert(0, str(HERE))
    from corpus import build_corpus

    # the first --files of the 1,000-file corpus (a smaller n would rebuild the shared corpus)
    paths = build_corpus(HERE / ".corpus", n=max(args.files, 1000))[: args.files]
    load_before = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="tl-bench-e2e-"))
    limit = args.child_timeout
    try:
        listing = work / "listing.txt"
        listing.write_text("\n".join(str(p) for p in paths))
        home = work / "home"
        ours = _run_child(
            ["--child", "ours", "--listing", str(listing), "--home", str(home)], limit
        )
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
            ],
            limit,
        )
        print(f"raw: {raw}", file=sys.stderr)
        profiled = None
        if args.profile_files:
            small = work / "listing-profile.txt"
            small.write_text("\n".join(str(p) for p in paths[: args.profile_files]))
            profiled = _run_child(
                ["--child", "profile", "--listing", str(small), "--home", str(work / "prof")],
                limit,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raw_cpu = sum(raw["stage_cpu_s"].values())
    ours_cpu = ours["cpu"]["total_s"]
    n = ours["artifacts"]
    ratio = raw_cpu / ours_cpu
    bottleneck = max(raw["stage_wall_s"], key=lambda k: raw["stage_wall_s"][k])
    wall_ratio = raw["stage_wall_s"][bottleneck] / ours["wall_s"]
    shares = {k: len(ours.pop(k)) for k in ("nlp_share", "extract_share", "image_share")}
    stages: dict[str, Any] = {}
    if profiled is not None and "profile" in profiled:
        # per item each stage handled (files, texts, inferences, voxels), since the profiled
        # run (the first --profile-files files) has its own mix of kinds
        prof = profiled["profile"]

        raw_items = {
            "classify": ours["files"],
            "extract": shares["extract_share"],
            "nlp": shares["nlp_share"],
            "infer": shares["image_share"],
            "package": ours["voxels"],
        }
        for stage, raw_s in raw["stage_cpu_s"].items():
            ours_s = prof["stage_cpu_s"].get(stage, 0.0)
            raw_ms = raw_s / max(raw_items[stage], 1) * 1000
            ours_ms = ours_s / max(prof["items"][stage], 1) * 1000
            stages[stage] = {
                "raw_ms_per_item": round(raw_ms, 3),
                "ours_profiled_ms_per_item": round(ours_ms, 3),
                "items": {"raw": raw_items[stage], "profiled": prof["items"][stage]},
                "ratio_raw_over_ours": round(raw_ms / ours_ms, 3) if ours_ms else None,
            }
    growth = ours["rss_growth"]
    print(
        json.dumps(
            {
                "name": "e2e",
                "baseline": {
                    "what": "each stage's raw library on the same work, CPU-seconds of every "
                    "process (Magika, extractors, nlp.pipe, decode + ORT, executemany into our "
                    "schema)",
                    **raw,
                    "cpu_s": round(raw_cpu, 2),
                    "cpu_ms_per_artifact": round(raw_cpu / n * 1000, 3),
                    "bottleneck_wall": bottleneck,
                },
                "ours": {
                    "what": "default runtime, every stage on (Magika, extract, spaCy, ONNX, "
                    "SQLite voxels): CPU-seconds of every process, submit to idle",
                    **ours,
                    "cpu_ms_per_artifact": round(ours_cpu / n * 1000, 3),
                    "shares": shares,
                },
                "stages": stages,
                "profile": None if profiled is None else profiled.get("profile"),
                "profile_files": args.profile_files,
                "ratio": round(ratio, 3),
                "goal": 0.83,
                "wall_ratio": round(wall_ratio, 3),
                "rss_growth_goal": 0.10,
                "met": ratio >= 0.83 and growth is not None and growth <= 0.10,
                "unit": "CPU-seconds: raw libraries' sum / ours, every process, same work "
                "(wall_ratio: bottleneck stage raw wall / our wall, secondary)",
                "machine": {
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average_before": load_before,
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                },
            }
        )
    )


if __name__ == "__main__":
    main()
