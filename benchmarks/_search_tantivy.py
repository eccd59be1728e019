"""Search: a dedicated engine side by side -- Tantivy (``tantivy-py``) on the same documents.

Not part of ``make bench``: ``tantivy`` is no dependency of the project. This measures what
docs/ARCHITECTURE.md ("PostgreSQL: what is left") weighs a dedicated engine on: the same
``BENCH_SEARCH_VOXELS`` documents as ``benchmarks/search.py`` (same seed, same names, labels,
document kinds and entities), indexed by Tantivy with an English stemmer (``en_stem``) over
name, body, entities and meta, labels and kinds as raw terms, the size as a fast field; then
the benchmark's query set, top 20 by BM25 (name boosted 10, entities 4, meta 2 as on SQLite),
with and without the page's snippets (``SnippetGenerator`` on the body), ``count`` of every
match, and for the faceted form the counts of labels and kinds over every match (a terms
aggregation). The scores are BM25, not ``ts_rank_cd``: a latency comparison, not the same
ranking.

Run: ``PYTHONPATH=src:DIR python benchmarks/_search_tantivy.py`` with tantivy installed in
DIR (``pip install --target DIR tantivy``); ``BENCH_TANTIVY_DIR`` keeps the index (reused when
it holds the N documents). The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tantivy

sys.path.insert(0, str(Path(__file__).parent))
from search import (  # the sibling benchmark: the same documents
    _CAPS,
    ETYPES,
    FILTERED,
    KINDS,
    LABELS,
    PHRASES,
    REPS,
    WORDS,
    N,
    documents,
    pct,
)

KEEP = os.environ.get("BENCH_TANTIVY_DIR", "")
BOOSTS = {"name": 10.0, "entities": 4.0, "meta": 2.0, "body": 1.0}


def schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    for name in ("name", "body", "entities", "meta"):
        builder.add_text_field(name, stored=name in ("name", "body"), tokenizer_name="en_stem")
    builder.add_text_field("label", stored=True, tokenizer_name="raw", fast=True)
    builder.add_text_field("kind", stored=True, tokenizer_name="raw", fast=True)
    builder.add_integer_field("size", stored=True, indexed=True, fast=True)
    return builder.build()


def build(index: tantivy.Index, docs: list[tuple[str, str]]) -> float:
    writer = index.writer(heap_size=200_000_000, num_threads=1)
    began = time.perf_counter()
    for i, (name, body) in enumerate(docs):
        label, group = LABELS[i % len(LABELS)]
        caps = list(dict.fromkeys(_CAPS.findall(body)))[:6]
        writer.add_document(
            tantivy.Document(
                name=name,
                body=body,
                entities=" ".join(f"{c} {ETYPES[j % len(ETYPES)]}" for j, c in enumerate(caps)),
                meta=f"{label} {group} en {KINDS[i % len(KINDS)]}",
                label=label,
                kind=KINDS[i % len(KINDS)],
                size=len(body.encode("utf-8")),
            )
        )
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    return time.perf_counter() - began


def compile_query(index: tantivy.Index, kind: str, query: str) -> tantivy.Query:
    """The benchmark's query in Tantivy: words/phrases over the text fields, filters as terms."""
    words = " ".join(p for p in query.split() if ":" not in p and ">" not in p)
    text = index.parse_query(words, list(BOOSTS), field_boosts=BOOSTS)
    if kind != "filtered":
        return text
    must: list[tuple[tantivy.Occur, tantivy.Query]] = [(tantivy.Occur.Must, text)]
    for part in query.split():
        if part.startswith("label:"):
            must.append(
                (tantivy.Occur.Must, tantivy.Query.term_query(index.schema, "label", part[6:]))
            )
        elif part.startswith("kind:"):
            must.append(
                (tantivy.Occur.Must, tantivy.Query.term_query(index.schema, "kind", part[5:]))
            )
        elif part.startswith("size>"):
            low = int(part[5:].rstrip("kb")) * 1000
            must.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.range_query(
                        index.schema, "size", tantivy.FieldType.Integer, low + 1, None
                    ),
                )
            )
    return tantivy.Query.boolean_query(must)


def run(index: tantivy.Index, kind: str, query: str, snippets: bool) -> int:
    searcher = index.searcher()
    q = compile_query(index, kind, query)
    result = searcher.search(q, 20, count=True)
    if snippets:
        generator = tantivy.SnippetGenerator.create(searcher, q, index.schema, "body")
        for _, address in result.hits:
            generator.snippet_from_doc(searcher.doc(address)).to_html()
    if kind == "faceted":
        searcher.aggregate(
            q,
            {
                "label": {"terms": {"field": "label", "size": 15}},
                "kind": {"terms": {"field": "kind", "size": 15}},
            },
        )
    return int(result.count or 0)


def main() -> None:
    docs = documents(N)
    out: dict[str, Any] = {
        "benchmark": "search_tantivy",
        "tantivy": tantivy.__version__ if hasattr(tantivy, "__version__") else "0.27.0",
        "voxels": N,
        "reps": REPS,
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    scratch = tempfile.mkdtemp(prefix="tantivy-")
    path = Path(KEEP or scratch)
    path.mkdir(parents=True, exist_ok=True)
    try:
        sch = schema()
        if KEEP and tantivy.Index.exists(str(path)):
            index = tantivy.Index.open(str(path))
        else:
            index = tantivy.Index(sch, path=str(path))
        if index.searcher().num_docs != len(docs):
            out["build_s"] = round(build(index, docs), 1)
        out["index_mb"] = round(sum(f.stat().st_size for f in path.iterdir()) / 2**20, 1)
        sets = {"word": WORDS, "phrase": PHRASES, "filtered": FILTERED, "faceted": WORDS}
        for kind, qs in sets.items():
            bare: list[float] = []
            full: list[float] = []
            counts: dict[str, int] = {}
            for rep in range(REPS):
                q = qs[rep % len(qs)]
                began = time.perf_counter()
                counts[q] = run(index, kind, q, snippets=False)
                bare.append(time.perf_counter() - began)
                began = time.perf_counter()
                run(index, kind, q, snippets=True)
                full.append(time.perf_counter() - began)
            out[kind] = {
                "p50_ms": pct(bare, 0.5),
                "p95_ms": pct(bare, 0.95),
                "with_snippets_p50_ms": pct(full, 0.5),
                "with_snippets_p95_ms": pct(full, 0.95),
                "median_ms": round(statistics.median(full) * 1000, 2),
                "matches": counts,
                "loadavg_1m": round(os.getloadavg()[0], 2),
            }
    finally:
        if not KEEP:
            shutil.rmtree(scratch, ignore_errors=True)
    out["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
