"""Ingest with the search index vs the same ingest without it (issue 19: goal >= 0.9).

The fair baseline is the same pipeline with indexing switched off, not a bare
``put_many``: a user's ingest is Magika, extraction, spaCy, the ONNX models and the voxel
write, and the index is one part of the last step. So each run is :func:`e2e.run_ours` (the
default runtime with every stage on, SQLite and the local object store, in a child process)
over the first ``--files`` files of the e2e corpus (real files of this machine); the
baseline child sets ``BENCH_E2E_SEARCH_INDEX=0``, which replaces the store's two search
hooks (building the index rows -- reading the extracted text back -- and writing them) with
no-ops. Runs alternate on, off, off, on (``--rounds`` pairs) so a drift of the machine's load
hits both; the cost is CPU-seconds of every process of the run (``_cost.CpuMeter``), wall
seconds beside it.

``ratio`` = baseline CPU-seconds / ours (>= 0.9: indexing costs at most ~11% of the ingest).
``put_many_only`` is the micro-benchmark (``put_many`` of 400-2400-character text voxels, no
pipeline) for the index's share of the bare write: two stores, one with the index and one
without, written batch for batch in alternating order.

Usage: ``.venv/bin/python benchmarks/search_ingest.py [--files 200] [--rounds 1]``; the last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def pipeline_run(listing: Path, home: Path, *, index: bool, timeout_s: float) -> dict[str, Any]:
    import e2e

    os.environ["BENCH_E2E_SEARCH_INDEX"] = "1" if index else "0"
    try:
        result = e2e._run_child(
            ["--child", "ours", "--listing", str(listing), "--home", str(home)], timeout_s
        )
    finally:
        os.environ.pop("BENCH_E2E_SEARCH_INDEX", None)
    return {
        "index": index,
        "cpu_s": result["cpu"]["total_s"],
        "wall_s": result["wall_s"],
        "artifacts": result["artifacts"],
        "voxels": result["voxels"],
        "dlq": result["dlq"],
        "loadavg": loadavg(),
    }


def put_many_only(n: int) -> dict[str, Any]:
    """CPU-seconds of put_many batches of text voxels into two stores, one with the index and
    one without, batch for batch in alternating order (one store for both would let a batch
    pay the WAL checkpoint of the other mode's pages)."""
    import search as search_bench
    import thunderline.voxel.store as store_module
    from thunderline.config import load_settings
    from thunderline.voxel.store import VoxelStore

    docs = search_bench.documents(n)
    cpu = {"on": 0.0, "off": 0.0}
    real = store_module.index_voxels, store_module.search_docs_for
    with tempfile.TemporaryDirectory() as tmp:
        stores = {m: VoxelStore(load_settings(home=Path(tmp) / m)) for m in ("on", "off")}
        for b, start in enumerate(range(0, n, 500)):
            for mode in ("on", "off") if b % 2 == 0 else ("off", "on"):
                store = stores[mode]
                items = [
                    search_bench.make_voxel(start + j, name, body, store)
                    for j, (name, body) in enumerate(docs[start : start + 500])
                ]
                if mode == "off":
                    store_module.index_voxels = lambda conn, docs: None  # type: ignore[assignment]
                    store_module.search_docs_for = lambda o, v, m: []  # type: ignore[assignment]
                before = resource.getrusage(resource.RUSAGE_SELF)
                store.put_many(items)
                after = resource.getrusage(resource.RUSAGE_SELF)
                store_module.index_voxels, store_module.search_docs_for = real
                used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                cpu[mode] += used
        for store in stores.values():
            store.close()
    per = {m: cpu[m] / n * 1e6 for m in cpu}
    return {
        "voxels": n,
        "cpu_us_per_voxel_with_index": round(per["on"], 1),
        "cpu_us_per_voxel_without_index": round(per["off"], 1),
        "ratio": round(per["off"] / per["on"], 3),
        "loadavg": loadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="Pipeline files (0: none).")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--put-many", type=int, default=6000, help="Voxels (0: skip).")
    parser.add_argument("--child-timeout", type=float, default=1800.0)
    args = parser.parse_args()
    from corpus import build_corpus

    results: dict[str, Any] = {
        "benchmark": "search_ingest",
        "loadavg_at_start": loadavg(),
        "files": args.files,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if args.put_many:
        results["put_many_only"] = put_many_only(args.put_many)
        print(f"put_many_only: {results['put_many_only']}", file=sys.stderr)
    if not args.files:  # put_many only
        results.update(ratio=results.get("put_many_only", {}).get("ratio"), goal=0.9)
        results["unit"] = "bare put_many CPU without / with the index (no pipeline)"
        results["loadavg_at_end"] = loadavg()
        print(json.dumps(results))
        return
    paths = build_corpus(HERE / ".corpus", n=1000)[: args.files]
    work = Path(tempfile.mkdtemp(prefix="tl-bench-search-ingest-"))
    runs: list[dict[str, Any]] = []
    try:
        listing = work / "listing.txt"
        listing.write_text("\n".join(str(p) for p in paths))
        for r in range(args.rounds):
            for i, index in enumerate((True, False, False, True)):
                home = work / f"home-{r}-{i}"
                runs.append(pipeline_run(listing, home, index=index, timeout_s=args.child_timeout))
                print(f"run: {runs[-1]}", file=sys.stderr)
                shutil.rmtree(home, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    on = [r for r in runs if r["index"]]
    off = [r for r in runs if not r["index"]]
    cpu_on, cpu_off = sum(r["cpu_s"] for r in on), sum(r["cpu_s"] for r in off)
    wall_on, wall_off = sum(r["wall_s"] for r in on), sum(r["wall_s"] for r in off)
    results["pipeline"] = {
        "runs": runs,
        "cpu_s_with_index": round(cpu_on, 2),
        "cpu_s_without_index": round(cpu_off, 2),
        "ratio": round(cpu_off / cpu_on, 3),
        "wall_s_with_index": round(wall_on, 2),
        "wall_s_without_index": round(wall_off, 2),
        "wall_ratio": round(wall_off / wall_on, 3),
    }
    results["ratio"] = results["pipeline"]["ratio"]
    results["goal"] = 0.9
    results["unit"] = "ingest CPU-s without / with the search index (same pipeline)"
    results["loadavg_at_end"] = loadavg()
    print(json.dumps(results))


if __name__ == "__main__":
    started = time.time()
    main()
