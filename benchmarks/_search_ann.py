"""Similar documents: an ANN index (usearch HNSW) beside the exact NumPy product, on a kept store.

Not a project dependency: measured to decide whether ``similar`` needs an ANN index at 100k
vectors (docs/ARCHITECTURE.md, "Similar documents"). Needs ``usearch`` importable and a store
kept by ``BENCH_SEARCH_KEEP=DIR benchmarks/search.py`` (SQLite, ``DIR/sqlite``). Prints one JSON
object: index build time, per-query p50/p95 of both and recall@21 of the ANN against the exact
top 21, for the store's first 100 documents (real embeddings) and 100 random rows.

Run: ``BENCH_SEARCH_KEEP=DIR .venv/bin/python benchmarks/_search_ann.py`` (the leading underscore
keeps it out of ``make bench``).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from sqlalchemy import text

from thunderline.config import load_settings
from thunderline.search.similar import cache_for
from thunderline.voxel.store import VoxelStore


def main() -> None:
    from usearch.index import Index

    store = VoxelStore(load_settings(home=Path(os.environ["BENCH_SEARCH_KEEP"]) / "sqlite"))
    cache = cache_for(store.engine)
    with store.engine.connect() as conn:
        cache.refresh(conn)
    matrix = cache.matrix
    n = len(matrix)
    began = time.perf_counter()
    index = Index(
        ndim=matrix.shape[1],
        metric="ip",
        dtype="f32",
        connectivity=16,
        expansion_add=128,
        expansion_search=64,
    )
    index.add(np.arange(n), matrix, threads=1)
    build = time.perf_counter() - began
    with store.engine.connect() as conn:
        query = text("SELECT voxel_id FROM search_docs ORDER BY doc_no LIMIT 100")
        real = [cache.row_of[str(v)] for v in conn.execute(query).scalars()]
    rng = np.random.default_rng(1)
    out: dict[str, object] = {
        "vectors": n,
        "build_s": round(build, 1),
        "loadavg": round(os.getloadavg()[0], 2),
    }
    for name, probes in (("real_probes", real), ("random_probes", rng.integers(0, n, 100))):
        exact: list[float] = []
        ann: list[float] = []
        recall: list[float] = []
        for p in probes:
            vector = matrix[int(p)]
            began = time.perf_counter()
            scores = matrix @ vector
            top = np.argpartition(-scores, 21)[:21]
            top = top[np.argsort(-scores[top])]
            exact.append(time.perf_counter() - began)
            began = time.perf_counter()
            found = index.search(vector, 21, threads=1)
            ann.append(time.perf_counter() - began)
            recall.append(len(set(top.tolist()) & set(found.keys.tolist())) / 21)

        def p95(values: list[float]) -> float:
            return round(sorted(values)[int(0.95 * len(values))] * 1000, 3)

        out[name] = {
            "exact_p50_ms": round(statistics.median(exact) * 1000, 2),
            "exact_p95_ms": p95(exact),
            "usearch_p50_ms": round(statistics.median(ann) * 1000, 3),
            "usearch_p95_ms": p95(ann),
            "recall_at_21": round(statistics.mean(recall), 3),
        }
    out["loadavg_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
