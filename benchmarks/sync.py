"""Unchanged-tree sync pass vs a raw ``os.scandir`` walk of the same tree.

Baseline: a recursive ``os.scandir`` walk that ``stat``s every regular file (the least any
change detector must do: size and mtime of each file). Ours: one
:meth:`thunderline.sources.sync.SourceSync.run_pass` over the same tree after it was synced --
the walk, the ledger read (one query), the in-memory comparison and the pass record; it reads no
file and sends no event. The pipeline is started before timing (it is idle throughout).

The ledger is seeded by a real first sync (``BENCH_SYNC_SEED=sync``, slow for large trees: every
file goes through the pipeline) or, by default, written directly with each file's current stat
(``BENCH_SYNC_SEED=ledger``): the same rows a first sync leaves, so the pass compares exactly as
after a real one. Best of ``BENCH_SYNC_REPEAT`` runs each, alternating.

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
REPEAT = int(os.environ.get("BENCH_SYNC_REPEAT", "3"))
SEED = os.environ.get("BENCH_SYNC_SEED", "ledger")


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


async def timed_passes(
    settings: Any, root: Path
) -> tuple[list[float], list[float], dict[str, Any]]:
    ours: list[float] = []
    base: list[float] = []
    last: dict[str, Any] = {}
    async with open_sync(settings, parse_source(str(root))) as sync:
        await sync.run_pass()  # warm: page cache, connection pool
        raw_walk(root)
        for _ in range(REPEAT):
            started = time.perf_counter()
            assert raw_walk(root) == N
            base.append(time.perf_counter() - started)
            started = time.perf_counter()
            report = await sync.run_pass()
            ours.append(time.perf_counter() - started)
            assert report.unchanged == N and report.submitted == 0, report
            last = report.to_json_dict()
    return base, ours, last


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


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tl-bench-sync-") as tmp:
        root = Path(tmp) / "tree"
        settings = load_settings(home=Path(tmp) / "home", enable_ml_pipeline=False)
        started = time.perf_counter()
        make_tree(root, N)
        made_s = time.perf_counter() - started
        started = time.perf_counter()
        if SEED == "sync":
            asyncio.run(sync_once(settings, parse_source(str(root))))
        else:
            seed_ledger(settings, root)
        seed_s = time.perf_counter() - started
        base, ours, report = asyncio.run(timed_passes(settings, root))
        latency = asyncio.run(watch_latency(Path(tmp) / "latency"))
    base_fps = N / min(base)
    ours_fps = N / min(ours)
    load = os.getloadavg()
    result = {
        "name": "sync",
        "baseline": {
            "what": "recursive os.scandir + lstat of every file",
            "best_s": round(min(base), 4),
            "runs_s": [round(x, 4) for x in base],
            "files_per_s": round(base_fps),
        },
        "ours": {
            "what": "SourceSync.run_pass over the same, already synced tree",
            "best_s": round(min(ours), 4),
            "runs_s": [round(x, 4) for x in ours],
            "files_per_s": round(ours_fps),
            "pass": {k: report[k] for k in ("seen", "unchanged", "submitted")},
            "watch_close_to_voxel_ms": latency,
        },
        "ratio": round(ours_fps / base_fps, 3),
        "goal": 0.5,
        "met": ours_fps / base_fps >= 0.5,
        "unit": f"files/s: an unchanged-tree sync pass vs a raw os.scandir+stat walk ({N} files)",
        "files": N,
        "seed": SEED,
        "seed_s": round(seed_s, 2),
        "tree_made_s": round(made_s, 2),
        "machine": {
            "cores": os.cpu_count(),
            "loadavg_1m": round(load[0], 2),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
    }
    print(json.dumps(result), file=sys.stdout)


if __name__ == "__main__":
    main()
