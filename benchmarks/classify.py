"""Benchmark: raw Magika ``identify_paths`` vs our classify stage through the engine.

Same corpus (>= 500 real files from this machine, built by ``benchmarks/corpus.py``), same run,
alternating raw / ours; each measurement runs in its own child process so that its peak RSS is
its own. Raw Magika is fed in bounded chunks (one call over 1,000 files peaks at ~7 GB RSS).
Ours is the full classify stage: admission, streaming into the content-addressed object store,
Magika in batches, events through the in-process bus, journal.

The primary figure is CPU-seconds (user + system, every thread) of each child over the same
files: raw Magika's against our whole per-file path, goal ours <= 1.2x raw (ratio >= 0.83);
a third child measures the object-store copy alone. Files/s stay as secondary figures.

Usage: .venv/bin/python benchmarks/classify.py [--files 1000] [--rounds 2]
The last line printed is one JSON object (ARCHITECTURE §9).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHUNK = 16  # = the default TL_CLASSIFY_BATCH_SIZE; RSS grows with the chunk (64: ~340 MB)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _latency(values_ms: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(_pct(values_ms, q), 3) for q in (50, 95, 99)}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU-seconds of this process so far (user + system, every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_copy(paths: list[Path]) -> dict[str, Any]:
    """The object-store copy alone: open each file and stream it into a fresh local store
    (hashing as it goes), as the classify stage does before Magika reads the stored copy."""
    from thunderline.objects import LocalObjectStore

    store = LocalObjectStore(Path(tempfile.mkdtemp(prefix="tl-bench-copy-")) / "objects")
    started, cpu0 = time.perf_counter(), _cpu_s()
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            store.put_fd(fd)
        finally:
            os.close(fd)
    return {
        "files": len(paths),
        "wall_s": time.perf_counter() - started,
        "cpu_s": _cpu_s() - cpu0,
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_raw(paths: list[Path]) -> dict[str, Any]:
    from magika import Magika

    magika = Magika()
    per_file: list[float] = []
    started, cpu0 = time.perf_counter(), _cpu_s()
    for i in range(0, len(paths), CHUNK):
        chunk = paths[i : i + CHUNK]
        t0 = time.perf_counter()
        magika.identify_paths(chunk)
        per_file.extend([(time.perf_counter() - t0) * 1000 / len(chunk)] * len(chunk))
    wall = time.perf_counter() - started
    return {
        "files": len(paths),
        "wall_s": wall,
        "cpu_s": _cpu_s() - cpu0,
        "files_per_s": len(paths) / wall,
        **_latency(per_file),
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_ours(paths: list[Path]) -> dict[str, Any]:
    from thunderline.classify import ClassifyStage
    from thunderline.classify.walk import Candidate
    from thunderline.config import load_settings
    from thunderline.events import CloudEvent
    from thunderline.runtime import Runtime, ingest_event

    home = Path(tempfile.mkdtemp(prefix="tl-bench-"))
    settings = load_settings(home=home, classify_batch_size=CHUNK, routes={"*": []})
    ends: list[CloudEvent] = []
    submitted_at: dict[str, float] = {}
    e2e: list[float] = []

    def on_terminal(event: CloudEvent) -> None:
        ends.append(event)
        e2e.append((time.perf_counter() - submitted_at[event.correlationid]) * 1000)

    async def go() -> float:
        from thunderline.objects import LocalObjectStore

        store = LocalObjectStore(home / "objects")
        stage = ClassifyStage(settings, store)
        runtime = Runtime(settings, on_terminal=on_terminal, stages=[stage])
        async with runtime:
            started, cpu0 = time.perf_counter(), _cpu_s()
            for path in paths:
                event = ingest_event(Candidate(path, path.parent))
                submitted_at[event.id] = time.perf_counter()
                await runtime.submit(event)
            await runtime.wait_idle()
            cpu.append(_cpu_s() - cpu0)
            return time.perf_counter() - started

    cpu: list[float] = []
    wall = asyncio.run(go())
    per_file = [e.data["classification"]["latency_ms"] for e in ends if not e.is_dlq]
    waits = [
        e.data["classification"]["queue_wait_ms"]
        for e in ends
        if not e.is_dlq and e.data["classification"].get("queue_wait_ms") is not None
    ]
    return {
        "files": len(paths),
        "wall_s": wall,
        "cpu_s": cpu[0],
        "files_per_s": len(paths) / wall,
        **_latency(per_file),
        "latency_is": "per file: admitted (stored) -> classified",
        "queue_wait": _latency(waits),
        "end_to_end": _latency(e2e),
        "dlq": sum(1 for e in ends if e.is_dlq),
        "peak_rss_mb": _peak_rss_mb(),
    }


def child(mode: str, listing: Path) -> None:
    paths = [Path(p) for p in listing.read_text().splitlines()]
    runner = {"raw": run_raw, "ours": run_ours, "copy": run_copy}[mode]
    result = runner(paths)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["raw", "ours", "copy"])
    parser.add_argument("--listing", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.listing)
        return

    sys.path.insert(0, str(HERE))
    from corpus import build_corpus

    # the first --files of the 1,000-file corpus (a smaller n would rebuild the shared corpus)
    paths = build_corpus(HERE / ".corpus", n=max(args.files, 1000))[: args.files]
    listing = Path(tempfile.mkstemp(suffix=".txt")[1])
    listing.write_text("\n".join(str(p) for p in paths))
    runs: dict[str, list[dict[str, Any]]] = {"raw": [], "ours": [], "copy": []}
    for _ in range(args.rounds):
        for mode in ("raw", "ours", "copy"):
            out = (
                subprocess.run(
                    [sys.executable, __file__, "--child", mode, "--listing", str(listing)],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            runs[mode].append(json.loads(out))
            print(f"{mode}: {runs[mode][-1]}", file=sys.stderr)
    best = {m: max(r, key=lambda x: x["files_per_s"]) for m in ("raw", "ours") for r in [runs[m]]}
    cpu = {m: min(x["cpu_s"] for x in r) for m, r in runs.items()}  # each mode's cheapest round
    cpu_ratio = cpu["raw"] / cpu["ours"]
    peak = max(r["peak_rss_mb"] for r in runs["ours"])

    import magika
    import onnxruntime

    print(
        json.dumps(
            {
                "name": "classify",
                "baseline": {
                    "what": f"Magika.identify_paths in chunks of {CHUNK}",
                    **best["raw"],
                    "all_files_per_s": [round(r["files_per_s"], 1) for r in runs["raw"]],
                },
                "ours": {
                    "what": "ClassifyStage through the engine (admit, store, classify, publish)",
                    **best["ours"],
                    "all_files_per_s": [round(r["files_per_s"], 1) for r in runs["ours"]],
                },
                "copy": {
                    "what": "the object-store copy alone (open, stream + SHA-256, rename)",
                    "cpu_s": round(cpu["copy"], 3),
                    "cpu_ms_per_file": round(cpu["copy"] / len(paths) * 1000, 3),
                    "all_cpu_s": [round(r["cpu_s"], 3) for r in runs["copy"]],
                },
                "cpu_ms_per_file": {
                    "raw_magika": round(cpu["raw"] / len(paths) * 1000, 3),
                    "ours": round(cpu["ours"] / len(paths) * 1000, 3),
                    "of_which_copy": round(cpu["copy"] / len(paths) * 1000, 3),
                    "raw_all_cpu_s": [round(r["cpu_s"], 3) for r in runs["raw"]],
                    "ours_all_cpu_s": [round(r["cpu_s"], 3) for r in runs["ours"]],
                },
                "ratio": round(cpu_ratio, 3),
                "files_per_s_ratio": round(
                    best["ours"]["files_per_s"] / best["raw"]["files_per_s"], 3
                ),
                "goal": 0.83,
                "met": cpu_ratio >= 0.83 and peak < 300,
                "unit": "CPU-seconds: raw Magika / our whole per-file path (admit, copy into the "
                "object store, Magika on the stored copy, event), cheapest round of each; "
                "peak RSS goal < 300 MB (files_per_s_ratio: ours/raw, secondary)",
                "machine": {
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "magika": magika.__version__,
                    "onnxruntime": onnxruntime.__version__,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
