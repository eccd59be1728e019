"""Unchanged-tree sync pass vs a raw ``os.scandir`` walk of the same tree.

Baseline: a recursive ``os.scandir`` walk that ``stat``s every regular file (the least any
change detector must do: size and mtime of each file). Ours: one
:meth:`thunderline.sources.sync.SourceSync.run_pass` over the same tree after it was synced --
the ledger's change count, the walk compared with the ledger on the way and the pass record; it
reads no file and sends no event (so it starts no pipeline). Two kinds of pass:

* ``ours`` (the ratio): a pass that reads the root's ledger entries (one query), as every
  ``thunderline sync`` does and as ``watch`` does after something was written;
* ``ours_watch`` (``watch_ratio``): a later pass of the same ``watch``, whose in-memory copy of
  the entries is still current (the root's change count did not move), so it reads no entry.

The ledger is seeded by a real first sync (``BENCH_SYNC_SEED=sync``, slow for large trees: every
file goes through the pipeline) or, by default, written directly with each file's current stat
(``BENCH_SYNC_SEED=ledger``): the same rows a first sync leaves, so the pass compares exactly as
after a real one. ``BENCH_SYNC_REPEAT`` runs each (default 5), alternating; a ratio is the
medians' (wall time), ``cpu_ratio`` / ``watch_cpu_ratio`` the same for CPU-seconds
(``time.process_time``: every thread of this process -- the pass runs in a worker thread).

``BENCH_SYNC_DIR=/tmp/somewhere`` keeps the tree and the ledger there between runs (made and
seeded once per file count; a later run only times the passes). ``BENCH_SYNC_LATENCY=0`` skips
the watch latency.

Goal: ours >= 0.5x the raw walk (files per second). The issue asks for 100k files:
``BENCH_SYNC_FILES=100000`` (the default; 20000 for a quick look).

Also reported (no goal): ``watch`` latency from a file's close to its voxel being committed
(p50/p95 over 20 files; it includes ``TL_SOURCE_SETTLE_S``, 0.5 s here).

Run: ``.venv/bin/python benchmarks/sync.py`` (last line: one JSON object).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sqlite3
import stat
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from thunderline.config import load_settings
from thunderline.sources.ledger import Ledger
from thunderline.sources.runner import open_sync, sync_once
from thunderline.sources.scan import parse_source, scan_dir

N = int(os.environ.get("BENCH_SYNC_FILES", "100000"))
REPEAT = int(os.environ.get("BENCH_SYNC_REPEAT", "5"))
SEED = os.environ.get("BENCH_SYNC_SEED", "ledger")
KEEP_DIR = os.environ.get("BENCH_SYNC_DIR", "")
LATENCY = os.environ.get("BENCH_SYNC_LATENCY", "1") != "0"


def make_tree(root: Path, n: int) -> None:
    old = time.time() - 3600
    for i in range(n):
        folder = root / f"d{i // 1000:03d}" / f"s{(i // 100) % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"f{i:06d}.txt"
        path.write_bytes(f"file {i}\n".encode())
        os.utime(path, (old, old))


def raw_walk(root: Path) -> int:
    """The baseline: scandir recursively, stat every regular file."""
    n = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                    n += 1
    return n


def seed_ledger(settings: Any, root: Path) -> None:
    source = parse_source(str(root))
    with Ledger(settings) as ledger:
        ledger.ensure_root(source.uri)
        rows = [
            {
                "root": source.uri,
                "key": seen.key,
                "version": 1,
                "size": seen.size,
                "mtime_ns": seen.mtime_ns,
                "content_sha256": uuid.uuid4().hex * 2,
                "correlation_id": uuid.uuid4().hex,
            }
            for seen in scan_dir(root)
        ]
        for start in range(0, len(rows), 5000):
            ids = ledger.add_versions(rows[start : start + 5000])
            ledger.settle({"id": i, "outcome": "voxel"} for i in ids)


Runs = dict[str, list[float]]


async def timed_passes(settings: Any, root: Path) -> tuple[Runs, Runs, Runs, dict[str, Any]]:
    """Alternating raw walks, reading passes and watch passes: wall and CPU seconds of each."""
    base: Runs = {"wall": [], "cpu": []}
    ours: Runs = {"wall": [], "cpu": []}
    watch: Runs = {"wall": [], "cpu": []}
    last: dict[str, Any] = {}
    async with open_sync(settings, parse_source(str(root))) as sync:
        await sync.run_pass()  # warm: page cache, connection pool
        raw_walk(root)
        for _ in range(REPEAT):
            started, cpu = time.perf_counter(), time.process_time()
            assert raw_walk(root) == N
            base["wall"].append(time.perf_counter() - started)
            base["cpu"].append(time.process_time() - cpu)
            for runs, forget in ((ours, True), (watch, False)):
                reads = sync.snapshot_reads
                if forget:
                    sync.snapshot = None  # as a new ``thunderline sync`` process: read it all
                started, cpu = time.perf_counter(), time.process_time()
                report = await sync.run_pass()
                runs["wall"].append(time.perf_counter() - started)
                runs["cpu"].append(time.process_time() - cpu)
                assert report.unchanged == N and report.submitted == 0, report
                assert sync.snapshot_reads == reads + forget, "the watch pass read the ledger"
                last = report.to_json_dict()
    return base, ours, watch, last


def _prepare(work: Path) -> tuple[Path, Any, float, float]:
    """The tree and a seeded ledger below ``work`` (reused when already there)."""
    root = work / f"tree-{N}"
    settings = load_settings(home=work / f"home-{N}-{SEED}", enable_ml_pipeline=False)
    made_s = seed_s = 0.0
    made, seeded = work / f".made-{N}", work / f".seeded-{N}-{SEED}"
    if not made.exists():
        started = time.perf_counter()
        make_tree(root, N)
        made_s = time.perf_counter() - started
        made.touch()
    if not seeded.exists():
        started = time.perf_counter()
        if SEED == "sync":
            asyncio.run(sync_once(settings, parse_source(str(root))))
        else:
            seed_ledger(settings, root)
        seed_s = time.perf_counter() - started
        seeded.touch()
    return root, settings, made_s, seed_s


def _summary(runs: Runs, what: str) -> dict[str, Any]:
    return {
        "what": what,
        "median_s": round(statistics.median(runs["wall"]), 4),
        "best_s": round(min(runs["wall"]), 4),
        "runs_s": [round(x, 4) for x in runs["wall"]],
        "median_cpu_s": round(statistics.median(runs["cpu"]), 4),
        "cpu_runs_s": [round(x, 4) for x in runs["cpu"]],
        "files_per_s": round(N / statistics.median(runs["wall"])),
    }


async def watch_latency(home: Path, n: int = 20, settle_s: float = 0.5) -> dict[str, Any]:
    """``watch`` on a folder: time from a file's close to its ledger entry being ``done`` (its
    voxel committed), for ``n`` files written 0.3 s apart. It includes the settle time."""
    from thunderline.sources.runner import watch

    tree = home / "watched"
    tree.mkdir(parents=True)
    settings = load_settings(
        home=home / "home",
        enable_ml_pipeline=False,
        source_settle_s=settle_s,
        source_poll_interval_s=0.25,
    )
    source = parse_source(str(tree))
    stop = asyncio.Event()
    task = asyncio.create_task(watch(settings, source, stop=stop))
    await asyncio.sleep(1.0)
    closed: dict[str, float] = {}
    for i in range(n):
        path = tree / f"w{i:03d}.txt"
        path.write_text(f"watched file {i}\n")
        closed[path.name] = time.time()
        await asyncio.sleep(0.3)
    deadline = time.monotonic() + 120
    entries: list[Any] = []
    with Ledger(settings) as ledger:
        while time.monotonic() < deadline:
            entries = [e for e in ledger.entries(source.uri) if e.state == "done"]
            if len(entries) == n:
                break
            await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 60)
    latencies = sorted((e.updated_unix - closed[e.key]) * 1000 for e in entries)
    return {
        "files": n,
        "settle_s": settle_s,
        "taken": len(latencies),
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p95_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))], 1),
    }


def _say(text: str) -> None:
    print(f"sync: {text}", file=sys.stderr, flush=True)


def main() -> None:
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="tl-bench-sync-") as tmp:
        work = Path(KEEP_DIR) if KEEP_DIR else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        root, settings, made_s, seed_s = _prepare(work)
        _say(f"tree made in {made_s:.1f} s, ledger seeded in {seed_s:.1f} s")
        started = time.perf_counter()
        base, ours, watch, report = asyncio.run(timed_passes(settings, root))
        _say(f"{REPEAT} rounds of walk and passes in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        latency = asyncio.run(watch_latency(Path(tmp) / "latency")) if LATENCY else None
        _say(f"watch latency in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
    _say(f"temporary files removed in {time.perf_counter() - started:.1f} s")

    def med(runs: Runs, what: str) -> float:
        return statistics.median(runs[what])

    ratio = med(base, "wall") / med(ours, "wall")
    load = os.getloadavg()
    result = {
        "name": "sync",
        "baseline": _summary(base, "recursive os.scandir + lstat of every file"),
        "ours": {
            **_summary(ours, "SourceSync.run_pass over the same, synced tree: ledger read"),
            "pass": {k: report[k] for k in ("seen", "unchanged", "submitted")},
            "watch_close_to_voxel_ms": latency,
        },
        "ours_watch": _summary(watch, "the same pass in watch: the ledger copy still current"),
        "ratio": round(ratio, 3),
        "cpu_ratio": round(med(base, "cpu") / med(ours, "cpu"), 3),
        "watch_ratio": round(med(base, "wall") / med(watch, "wall"), 3),
        "watch_cpu_ratio": round(med(base, "cpu") / med(watch, "cpu"), 3),
        "goal": 0.5,
        "met": ratio >= 0.5,
        "unit": f"files/s: an unchanged-tree sync pass vs a raw os.scandir+stat walk ({N} files; "
        "median of the runs, the pass reading the ledger; cpu_ratio: the same in CPU-seconds; "
        "watch_ratio, watch_cpu_ratio: a watch pass whose ledger copy is current)",
        "files": N,
        "repeat": REPEAT,
        "seed": SEED,
        "seed_s": round(seed_s, 2),
        "tree_made_s": round(made_s, 2),
        "machine": {
            "cores": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_1m": round(load[0], 2),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
    }
    print(json.dumps(result), file=sys.stdout)


if __name__ == "__main__":
    main()
