"""What replacing an extraction worker costs, and how its memory grows (``TL_EXTRACT_RESTART_AFTER``).

One extraction worker (the real pool, ``max_files`` out of the way) extracts the files of the
:mod:`corpus` that have an extractor (Magika picks it, as the classify stage does; OCR as the
defaults say), the corpus repeated until ``--files`` files were extracted. Every 100 files it
records the worker's RSS and CPU-seconds (``psutil``). Then the **restart cost**: the first
``--probe`` files again on the warm worker (its CPU-seconds), then on a fresh worker (its
CPU-seconds from exec, imports included); ``restart_cpu_s`` is the difference.

``rss_growth_mb_per_100`` is the worker's RSS growth per 100 files between the first 100-file
sample and the last (a least-squares slope over the samples).

Usage: ``PYTHONPATH=src .venv/bin/python benchmarks/extract_restart.py [--files 1000]``; the
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent


def _jobs(paths: list[Path], work: Path) -> list[Any]:
    from magika import Magika

    from thunderline.config import load_settings
    from thunderline.extract.pool import Job
    from thunderline.extract.registry import NONE, extractor_for
    from thunderline.extract.stage import OCR_EXTRACTORS

    settings = load_settings(home=work / "home")
    magika = Magika()
    jobs = []
    for index, (path, res) in enumerate(zip(paths, magika.identify_paths(paths), strict=True)):
        label = res.output.label
        extractor = extractor_for(label, res.output.group, res.output.is_text)
        if extractor is NONE:
            continue
        ocr = settings.extract.ocr != "off" and extractor.name in OCR_EXTRACTORS
        jobs.append(
            Job(
                id=f"f{index}",
                path=str(path),
                extractor=extractor.name,
                kind="ocr" if ocr else extractor.kind,
                label=label,
                mime=res.output.mime_type,
                max_text_bytes=settings.nlp.max_text_bytes,
                max_parts=settings.extract.max_parts,
                parts_dir=None,
                ocr=ocr,
                ocr_engine=settings.extract.ocr if ocr else "rapidocr",
            )
        )
    return jobs


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def _run(jobs: list[Any], files: int, probe: int, work: Path) -> dict[str, Any]:
    from thunderline.extract.pool import ExtractPool, PoolConfig

    async def one(pool: ExtractPool, job: Any, n: int) -> None:
        parts = work / f"parts-{n}"
        parts.mkdir()
        try:
            await pool.extract(dataclasses.replace(job, parts_dir=str(parts)))
        except Exception:  # a typed failure is part of the corpus (counted, not fatal)
            pass
        finally:
            shutil.rmtree(parts, ignore_errors=True)

    config = PoolConfig(workers=1, max_files=10**9)
    samples: list[dict[str, float]] = []
    pool = ExtractPool(config)
    await pool.start()
    try:
        [pid] = pool.pids
        start_cpu = _cpu(pid)
        for n in range(files):
            await one(pool, jobs[n % len(jobs)], n)
            if (n + 1) % 100 == 0:
                [now] = pool.pids
                assert now == pid, "the worker was replaced (a crash or timeout)"
                proc = psutil.Process(pid)
                samples.append(
                    {
                        "files": n + 1,
                        "rss_mb": round(proc.memory_info().rss / 2**20, 1),
                        "cpu_s": round(_cpu(pid) - start_cpu, 3),
                    }
                )
        before = _cpu(pid)
        for n in range(probe):
            await one(pool, jobs[n % len(jobs)], files + n)
        warm = _cpu(pid) - before
    finally:
        await pool.close()
    pool = ExtractPool(config)
    await pool.start()
    try:
        [pid] = pool.pids
        for n in range(probe):
            await one(pool, jobs[n % len(jobs)], 2 * files + n)
        cold = _cpu(pid)  # from exec: interpreter, imports, then the same files
    finally:
        await pool.close()
    xs = [s["files"] for s in samples]
    ys = [s["rss_mb"] for s in samples]
    slope = 0.0
    if len(xs) > 1:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
    return {
        "files": files,
        "distinct_files": len(jobs),
        "samples": samples,
        "rss_growth_mb_per_100": round(slope * 100, 2),
        "probe_files": probe,
        "warm_cpu_s": round(warm, 3),
        "fresh_cpu_s": round(cold, 3),
        "restart_cpu_s": round(cold - warm, 3),
    }


def main() -> None:
    """Run the measurement; print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--corpus-files", type=int, default=1000)
    parser.add_argument("--probe", type=int, default=50)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from corpus import build_corpus

    load = [os.getloadavg()]
    paths = build_corpus(n=args.corpus_files)
    with tempfile.TemporaryDirectory(prefix="tl-extract-restart-") as tmp:
        work = Path(tmp)
        jobs = _jobs(paths, work)
        out = asyncio.run(_run(jobs, args.files, args.probe, work))
    load.append(os.getloadavg())
    out["loadavg_before_after"] = [[round(x, 2) for x in one] for one in load]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
