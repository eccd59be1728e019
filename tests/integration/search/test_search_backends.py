"""Search over real ingested documents, on SQLite (FTS5) and PostgreSQL (tsvector + GIN).

The example files go through the real pipeline once (Magika, extraction, spaCy, the ONNX
models) into a SQLite store; the PostgreSQL store gets the same voxels through
``VoxelStore.put_many`` -- the write path that indexes them in the voxel's transaction.
Every query form is then asked of both, and a fuzzer throws arbitrary text at both: a query
either answers or fails with a typed QuerySyntaxError -- never a database error.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from tests.integration.search._stores import ingest_examples, pg_schema_url, store_on
from typer.testing import CliRunner

from thunderline.cli import app
from thunderline.config import Settings
from thunderline.ids import short
from thunderline.search.engine import Searcher
from thunderline.search.export import encode, encode_parquet, iter_rows
from thunderline.search.lifecycle import check, rebuild, remove
from thunderline.search.query import QuerySyntaxError
from thunderline.voxel.store import VoxelStore

REPO = Path(__file__).resolve().parents[3]
FILES = [
    "IDLE crédits.txt",
    "python-history.txt",
    "idle-history.txt",
    "README.md",
    "nodejs-contributing.md",
    "shared-mime-info-spec.pdf",
    "fashion-mnist-sneaker.png",
    "fashion-mnist-bag.png",
    "colorsys.py",
]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return ingest_examples(tmp_path_factory.mktemp("search"), FILES)


@pytest.fixture(scope="module")
def pg_store_url(pg_url: str, ingested: Settings) -> Iterator[str]:
    yield from pg_schema_url(pg_url, "tl_search")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, ingested: Settings) -> Iterator[VoxelStore]:
    yield from store_on(request, ingested)


def names(store: VoxelStore, query: str, **kwargs: Any) -> list[str]:
    result = Searcher(store.engine).search(query, limit=50, **kwargs)
    return sorted({hit.name for hit in result.hits})


def test_every_query_form(store: VoxelStore) -> None:
    assert "python-history.txt" in names(store, "guido")
    guido = {"IDLE crédits.txt", "python-history.txt"}
    assert guido <= set(names(store, '"Guido van Rossum"'))
    assert "colorsys.py" not in names(store, '"Guido van Rossum"')
    assert guido <= set(names(store, 'entity:"Guido van Rossum"'))
    assert "colorsys.py" not in names(store, 'entity:"Guido van Rossum"')
    assert names(store, "creators") == ["IDLE crédits.txt"]  # stemmed: creator
    assert "python-history.txt" in names(store, "pyth*")
    assert "python-history.txt" not in names(store, "python -stichting")
    assert "python-history.txt" in names(store, "stichting OR zzzzqqq")
    assert names(store, "label:pdf") == ["shared-mime-info-spec.pdf"]
    assert names(store, "label:pdf mime") == ["shared-mime-info-spec.pdf"]
    assert names(store, "model:image_classifier=sneaker") == ["fashion-mnist-sneaker.png"]
    assert names(store, "model:sneaker") == ["fashion-mnist-sneaker.png"]
    assert names(store, "group:image") == ["fashion-mnist-bag.png", "fashion-mnist-sneaker.png"]
    assert "fashion-mnist-bag.png" not in names(store, "size>2kb")
    assert names(store, "size>2kb group:image") == []
    assert "README.md" in names(store, "lang:en")
    assert names(store, "lang:de") == []
    assert "python-history.txt" in names(store, "entity.type:PERSON")
    assert "python-history.txt" in names(store, "kind:readme")
    assert names(store, "after:2999") == []
    assert len(names(store, "before:2999")) >= len(FILES)
    assert names(store, "name:sneaker") == ["fashion-mnist-sneaker.png"]
    assert "shared-mime-info-spec.pdf" in names(store, "guido OR label:pdf")


def test_ranking_snippets_and_facets(store: VoxelStore) -> None:
    result = Searcher(store.engine).search("guido", facets=True)
    assert result.order == "relevance"
    scores = [h.score for h in result.hits]
    assert all(s is not None for s in scores) and scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    top = result.hits[0]
    assert any(seg.match and seg.text.lower().startswith("guido") for seg in top.snippet)
    assert result.total == len(result.hits)
    assert {v.value for v in result.facets["label"]} >= {"txt"}
    assert any(v.value == "Guido van Rossum" for v in result.facets["entity"])
    assert any(v.value == "PERSON" for v in result.facets["entity.type"])
    assert result.facet_basis == result.total  # fewer than 1000 matches: counted over all
    by_time = Searcher(store.engine).search("guido", order="time")
    stamps = [h.ts for h in by_time.hits]
    assert stamps == sorted(stamps, reverse=True)


def test_numeric_entities_filter_but_never_crowd_the_facet(store: VoxelStore) -> None:
    with store.engine.connect() as conn:
        numeric = conn.execute(
            text(
                "SELECT t.shown, d.name FROM search_terms t JOIN search_docs d "
                "ON d.doc_no = t.doc_no WHERE t.field = 'entnum' ORDER BY t.shown LIMIT 1"
            )
        ).one()
    everything = Searcher(store.engine).search("", facets=True)
    shown = {v.value for v in everything.facets["entity"]}
    assert shown and numeric[0] not in shown
    assert {"DATE", "CARDINAL"} & {v.value for v in everything.facets["entity.type"]}
    value = numeric[0].replace('"', " ")
    assert numeric[1] in names(store, f'entity:"{value}"')  # still a filter


def test_cursor_pages_cover_every_match_once(store: VoxelStore) -> None:
    searcher = Searcher(store.engine)
    for query, order in (("the", "relevance"), ("", "time"), ("label:txt OR label:pdf", "time")):
        total = searcher.search(query, facets=True).total
        seen: list[str] = []
        page = searcher.search(query, order=order, limit=2)  # type: ignore[arg-type]
        seen += [h.voxel_id for h in page.hits]
        while page.next_cursor:
            page = searcher.search(query, order=order, limit=2, cursor=page.next_cursor)  # type: ignore[arg-type]
            seen += [h.voxel_id for h in page.hits]
        assert len(seen) == len(set(seen)) == total
    with pytest.raises(QuerySyntaxError, match="another query"):
        first = searcher.search("the", limit=1)
        assert first.next_cursor
        searcher.search("python", cursor=first.next_cursor)


QUERY_CHARS = st.sampled_from([*list("abcgu ido\"()*-:><=.'\\%_;"), "AND", "OR", "NOT", "label:"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(QUERY_CHARS, max_size=20).map("".join) | st.text(max_size=40))
def test_fuzzed_queries_answer_or_fail_typed(store: VoxelStore, query: str) -> None:
    try:
        Searcher(store.engine).search(query, facets=True, limit=3)
    except QuerySyntaxError as exc:
        assert 0 <= exc.position <= len(query)


def test_index_lifecycle(store: VoxelStore) -> None:
    ids = list(store.iter_ids())
    assert check(store, ids) == []
    victim = next(i for i in ids if "guido" in json.dumps(store.get(i).traits).lower())
    with store.engine.begin() as conn:  # a stale row: the index says something else
        conn.execute(
            text("UPDATE search_docs SET content_sha256 = :x WHERE voxel_id = :v"),
            {"x": "0" * 64, "v": victim},
        )
    assert [(p.voxel_id, p.reason) for p in check(store, ids)] == [(victim, "index_stale")]
    assert remove(store, [victim]) == 1
    assert [(p.voxel_id, p.reason) for p in check(store, ids)] == [(victim, "index_missing")]
    assert victim not in {h.voxel_id for h in Searcher(store.engine).search("guido").hits}
    report = rebuild(store)
    assert (report.written, report.current) == (1, len(ids) - 1)
    assert check(store, ids) == []
    assert victim in {h.voxel_id for h in Searcher(store.engine).search("guido").hits}


def test_export_rows(store: VoxelStore) -> None:
    rows = list(iter_rows(store, 'entity:"Guido van Rossum"', with_text=True))
    assert {"IDLE crédits.txt", "python-history.txt"} <= {r["name"] for r in rows}
    for row in rows:
        assert row["lang"] == "en" and row["text"] and "Guido" in row["text"]
        assert {"text": "Guido van Rossum", "type": "PERSON"} in row["entities"]
        assert row["models"]["text_classifier"]["label"]
    csv_text = "".join(encode(iter(rows), "csv"))
    assert csv_text.splitlines()[0].startswith("id,name,source")
    assert len(list(iter_rows(store, ""))) == store.count()


def test_export_parquet(store: VoxelStore, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    target = tmp_path / "out.parquet"
    rows = iter_rows(store, 'entity:"Guido van Rossum"', with_text=True)
    chunks = list(encode_parquet(rows, row_group=1))  # one row group per row: streamed
    target.write_bytes(b"".join(chunks))
    parquet = pq.ParquetFile(target)
    table = parquet.read()
    assert parquet.metadata.num_row_groups == table.num_rows >= 2
    assert len(chunks) == table.num_rows + 1  # a chunk per group, then the footer
    assert table.schema.field("ts").type.tz == "UTC"
    assert table.schema.field("size").type == "int64"
    by_name = {r["name"]: r for r in table.to_pylist()}
    history = by_name["python-history.txt"]
    assert {"text": "Guido van Rossum", "type": "PERSON"} in history["entities"]
    assert history["text"] and "Guido" in history["text"]
    assert [m["model"] for m in history["models"]] == ["text_classifier"]
    assert json.loads(history["metadata"]) == next(
        r["metadata"] for r in iter_rows(store, "name:python-history")
    )
    empty = b"".join(encode_parquet(iter_rows(store, "after:2999")))
    (tmp_path / "empty.parquet").write_bytes(empty)
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0  # still a valid file


def test_export_memory_is_flat(store: VoxelStore) -> None:
    """Export of the whole store in pages of 2 peaks no higher than of 1 page of it: rows are
    not accumulated (the 100k-row figure is in benchmarks/search.py)."""

    def peak(page: int) -> int:
        tracemalloc.start()
        for _ in encode(iter_rows(store, "", page=page), "jsonl"):
            pass
        for _ in encode_parquet(iter_rows(store, "", page=page), row_group=page):
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, whole = peak(2), peak(10_000)
    assert small < whole


def test_cli_search_and_exit_codes(store: VoxelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_HOME", str(store.settings.home))
    monkeypatch.setenv("TL_DATABASE_URL", store.url.replace("***", ""))
    runner = CliRunner()
    ok = runner.invoke(app, ["search", "guido", "--json", "--facets"])
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.stdout)
    assert body["hits"] and body["facets"]["entity"]
    bad = runner.invoke(app, ["search", "foo AND (bar"])
    assert bad.exit_code == 2
    assert "missing ')'" in bad.output and "Traceback" not in bad.output


def test_voxels_verify_reports_index_rows(
    store: VoxelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TL_HOME", str(store.settings.home))
    monkeypatch.setenv("TL_DATABASE_URL", store.url.replace("***", ""))
    runner = CliRunner()
    assert runner.invoke(app, ["voxels", "verify", "--all"]).exit_code == 0
    victim = next(iter(store.iter_ids()))
    remove(store, [victim])
    failed = runner.invoke(app, ["voxels", "verify", "--all"], terminal_width=200)
    assert failed.exit_code == 1
    assert "index_missing" in failed.output and short(victim) in failed.output  # short ids
    rebuilt = runner.invoke(app, ["index", "rebuild"])
    assert rebuilt.exit_code == 0 and "1 indexed" in rebuilt.output
    assert runner.invoke(app, ["voxels", "verify", "--all"]).exit_code == 0
