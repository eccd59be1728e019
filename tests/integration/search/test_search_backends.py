"""Search over real ingested documents, on SQLite (FTS5) and PostgreSQL (tsvector + GIN).

The example files go through the real pipeline once (Magika, extraction, spaCy, the ONNX
models) into a SQLite store; the PostgreSQL store gets the same voxels through
``VoxelStore.put_many`` -- the write path that indexes them in the voxel's transaction.
Every query form is then asked of both, and a fuzzer throws arbitrary text at both: a query
either answers or fails with a typed QuerySyntaxError -- never a database error.
"""

from __future__ import annotations

import json
import re
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from tests.integration.search._rank import assert_reduced_rank_exact
from tests.integration.search._stores import ingest_examples, pg_schema_url, store_on
from typer.testing import CliRunner

from thunderline.cli import app
from thunderline.config import Settings
from thunderline.ids import short
from thunderline.search.engine import Searcher
from thunderline.search.export import encode, encode_parquet, iter_rows
from thunderline.search.hook import docs_for
from thunderline.search.index import index_voxels
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
    assert result.facet_basis == result.total  # counted over every match
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
    cases = [
        ("the", "relevance"),
        ("", "time"),
        ("label:txt OR label:pdf", "time"),
        ("the label:txt", "relevance"),
        ("the", "time"),
    ]
    for query, order in cases:
        total = searcher.search(query, facets=True).total
        walks = []
        for facets in (False, True):  # a faceted page is cut from all matches in Python
            seen: list[str] = []
            kw: dict[str, Any] = {"order": order, "limit": 2, "facets": facets}
            page = searcher.search(query, **kw)
            seen += [h.voxel_id for h in page.hits]
            while page.next_cursor:
                page = searcher.search(query, cursor=page.next_cursor, **kw)
                seen += [h.voxel_id for h in page.hits]
            assert len(seen) == len(set(seen)) == total
            walks.append(seen)
        assert walks[0] == walks[1], (query, order)
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


def _true_facets(store: VoxelStore, query: str) -> dict[str, dict[str, int]]:
    """Every facet of every match of ``query``, counted in plain SQL (no limit, no cache)."""
    ids = [v for batch in Searcher(store.engine).iter_matches(query) for v in batch]
    out: dict[str, dict[str, int]] = {}
    with store.engine.connect() as conn:
        numbers = [
            int(
                conn.execute(
                    text("SELECT doc_no FROM search_docs WHERE voxel_id = :v"), {"v": v}
                ).scalar_one()
            )
            for v in ids
        ] or [-1]
        nums = ", ".join(map(str, numbers))
        for name, column in (
            ("label", "label"),
            ("group", "grp"),
            ("lang", "lang"),
            ("kind", "kind"),
        ):
            out[name] = {
                str(v).casefold(): int(n)
                for v, n in conn.execute(
                    text(
                        f"SELECT {column}, count(*) FROM search_docs WHERE doc_no IN ({nums}) "
                        f"AND {column} IS NOT NULL GROUP BY {column}"
                    )
                )
            }
        for name, field in (("entity.type", "etype"), ("entity", "entity"), ("model", "model")):
            out[name] = {
                str(shown).casefold(): int(n)
                for shown, n in conn.execute(
                    text(
                        "SELECT min(shown), count(*) FROM search_terms WHERE field = :f "
                        f"AND doc_no IN ({nums}) GROUP BY value"
                    ),
                    {"f": field},
                )
            }
    return out


def _assert_exact(store: VoxelStore, query: str) -> None:
    result = Searcher(store.engine).search(query, facets=True, limit=1)
    truth = _true_facets(store, query)
    assert result.total == result.facet_basis  # counted over every match
    assert result.total == sum(len(b) for b in Searcher(store.engine).iter_matches(query))
    for name, values in result.facets.items():
        got = {v.value.casefold(): v.count for v in values}
        assert all(truth[name][k] == n for k, n in got.items()), (query, name)
        left_out = [n for k, n in truth[name].items() if k not in got]
        assert len(got) == min(15, len(truth[name])), (query, name)
        assert not left_out or max(left_out) <= min(got.values()), (query, name)


def test_facets_are_exact_and_follow_writes(store: VoxelStore) -> None:
    queries = ["", "guido", "the", "label:txt OR label:pdf", "entity.type:PERSON python"]
    for query in queries:
        _assert_exact(store, query)
    victim = next(h.voxel_id for h in Searcher(store.engine).search("guido").hits)
    before = Searcher(store.engine).search("", facets=True).total
    assert remove(store, [victim]) == 1  # a deletion: the facet copy is read again
    assert Searcher(store.engine).search("", facets=True).total == before - 1
    for query in queries:
        _assert_exact(store, query)
    assert rebuild(store).written == 1  # a new row (a new doc_no): appended to the copy
    assert Searcher(store.engine).search("", facets=True).total == before
    for query in queries:
        _assert_exact(store, query)
    # SQLite gives a freed doc_no again: take out the newest row and one of another label,
    # so re-indexing puts one voxel's row at the number the copy knows as the other's
    with store.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT voxel_id, label FROM search_docs ORDER BY doc_no DESC")
        ).all()
    newest, label = rows[0]
    other = next(v for v, lab in rows[2:] if lab != label)
    assert remove(store, [newest, other]) == 2
    for query in queries:
        _assert_exact(store, query)
    max_chars = store.settings.search.max_text_chars
    with store.engine.begin() as conn:  # `other` alone: it takes the next number
        index_voxels(conn, docs_for(store.objects, [store.get(other)], max_chars))
    for query in queries:
        _assert_exact(store, query)
    assert rebuild(store).written == 1
    for query in queries:
        _assert_exact(store, query)


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
    assert "foo AND (bar\n" in bad.output  # the query, with a caret under the mistake
    assert bad.output.splitlines()[-1] == "  " + " " * 8 + "^", bad.output

    # too long: the length and the limit, a short prefix, never the query itself
    long = runner.invoke(app, ["search", "abcdefghij" * 300], terminal_width=200)
    assert long.exit_code == 2, long.output
    assert "3000 characters" in long.output and "limit is 1000" in long.output, long.output
    assert len(long.output) < 200 and "abcdefghij" * 3 not in long.output, long.output
    exported = runner.invoke(app, ["export", "x" * 5000], terminal_width=200)
    assert exported.exit_code == 2 and "5000 characters" in exported.output
    assert len(exported.output) < 200, exported.output

    # a mistake in a long query of allowed length: a short excerpt, the caret under it
    far = runner.invoke(app, ["search", "python " * 60 + "size>" + "9x" * 100])
    assert far.exit_code == 2 and "not a size" in far.output, far.output
    assert len(far.output) < 400, far.output
    shown, caret = far.output.splitlines()[-2:]
    assert shown.startswith("  ...") and shown.endswith("...")
    assert shown[caret.index("^") :].startswith("9x9x"), (shown, caret)


def test_cli_export_to_a_path_it_cannot_write_is_a_clear_error(
    store: VoxelStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TL_HOME", str(store.settings.home))
    monkeypatch.setenv("TL_DATABASE_URL", store.url.replace("***", ""))
    runner = CliRunner()
    missing = tmp_path / "no-such-dir" / "out.parquet"
    bad = runner.invoke(app, ["export", "", "--format", "parquet", "--out", str(missing)])
    assert bad.exit_code == 2, bad.output
    assert "cannot write" in bad.output and "Traceback" not in bad.output
    out = tmp_path / "out.csv"
    ok = runner.invoke(app, ["export", "guido", "--format", "csv", "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert out.read_text(encoding="utf-8").startswith("id,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no partial file left


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


#: words of the example texts (none in a file name) and the regex of their stemmed forms
RANKED_WORDS = {"release": r"\breleas\w*", "version": r"\bversion\w*", "guido": r"\bguido\b"}


@pytest.mark.parametrize("word", sorted(RANKED_WORDS))
def test_ranking_puts_the_most_matches_first(store: VoxelStore, word: str) -> None:
    """Relevance order on real documents: the hits with clearly more matches rank higher.

    The occurrences are counted in each hit's own extracted text (not from the index). A hit
    dominates another when it has at least three times its occurrences (and at least three)
    and as dense a share of its words (BM25 on SQLite weighs the document's length, so a
    long document with more occurrences but a thinner share is not clearly better): every
    dominating hit ranks above the hit it dominates, and nothing dominates the first hit.
    """
    from thunderline.search.hook import voxel_text

    hits = Searcher(store.engine).search(word, limit=50).hits
    counts, densities = [], []
    for hit in hits:
        body = voxel_text(store.objects, store.get(hit.voxel_id), 1_000_000) or ""
        counts.append(len(re.findall(RANKED_WORDS[word], body, re.IGNORECASE)))
        densities.append(counts[-1] / max(1, len(re.findall(r"\w+", body))))
    seen = [(h.name, c, round(d, 4)) for h, c, d in zip(hits, counts, densities, strict=True)]
    assert len(hits) >= 2 and max(counts) >= 3, (word, seen)  # a ranking to check
    pairs = 0
    for i in range(len(hits)):
        for j in range(len(hits)):
            if counts[i] >= 3 and counts[i] >= 3 * counts[j] and densities[i] >= densities[j]:
                assert i < j, (word, seen)
                pairs += 1
    assert pairs, (word, seen)  # the order was tested on at least one pair


def test_postgresql_stores_the_tsvector_inline(store: VoxelStore) -> None:
    """Migration 0013: the body out of line, the tsvector inline and uncompressed."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL storage setting")
    with store.engine.connect() as conn:
        storage = dict(
            conn.execute(
                text(
                    "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = "
                    "'search_docs'::regclass AND attname IN ('body', 'tsv')"
                )
            ).all()
        )
    assert storage == {"body": "e", "tsv": "m"}


def test_a_term_without_lexemes_changes_nothing(store: VoxelStore) -> None:
    """``_`` is a word character but no lexeme: NOT it or OR it leaves the query as it was
    (PostgreSQL: the de-duplicated tsquery of such a term is the empty query, not NULL)."""
    guido = names(store, "guido")
    assert guido and names(store, "guido -_") == guido
    assert names(store, "guido OR _") == guido
    assert names(store, "_") == []


#: words, phrases (one with a stop word), OR, NOT, a prefix and a field beside the words
REDUCED_RANK_QUERIES = [
    "release",
    "releases",
    "versions",
    "creators",
    "python",
    '"Guido van Rossum"',
    '"the debugger"',
    "python history",
    "release OR version",
    "python -stichting",
    "release pyth*",
    "python label:txt",
]


def test_postgresql_reduced_ranking_is_exact(
    store: VoxelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL ranks a match on the smallest query with the same ``ts_rank_cd`` score
    (thunderline.search.pgrank): every match's score equals the full query's, the pages are
    the same, and the reduction was used."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL ranking")
    counted = assert_reduced_rank_exact(store, REDUCED_RANK_QUERIES, monkeypatch)
    assert sum(reduced for _, reduced in counted.values()) > 0, counted


def test_postgresql_search_statements_stay_prepared(store: VoxelStore) -> None:
    """A search reads in autocommit: no ROLLBACK on the connection's return to the pool, so
    psycopg keeps the statements it prepared (the same text for every word) across searches
    instead of dropping them and having them parsed and planned again."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL statements")
    searcher = Searcher(store.engine)
    for word in ["release", "version", "guido"] * 3:
        assert searcher.search(word).hits
    with searcher._connect() as conn:
        prepared = conn.execute(
            text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%ts_rank_cd%'")
        ).scalar_one()
    assert prepared >= 1


def _note(store: VoxelStore, body: str, lang: str) -> str:
    """A new text voxel holding ``body`` in ``lang``, written (and indexed) through put_many."""
    import uuid
    from datetime import UTC, datetime

    from thunderline.voxel.schema import seal

    data = body.encode("utf-8")
    stored = store.objects.put_bytes(data)
    ts = datetime(2026, 12, 5, tzinfo=UTC)
    voxel = seal(
        {
            "id": str(uuid.uuid4()),
            "ts": ts,
            "source": "file:///cache-test/note.txt",
            "coords": {"t": ts.timestamp(), "channel": "text", "position": 0},
            "traits": {
                "artifact": {"name": "note.txt", "size": len(data), "source": "file:///n"},
                "classification": {"label": "txt", "group": "text", "mime": "text/plain"},
                "extract": {"text_ref": stored.ref, "chars": len(body)},
                "nlp": {"lang": lang, "entities": []},
            },
            "payload_ref": stored.ref,
            "payload_size": len(data),
            "checksums": {"payload_sha256": stored.sha256},
            "correlation_id": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
        }
    )
    assert store.put_many([(voxel, data)])[0].created
    return voxel.id


def test_cached_plans_never_return_stale_rows(store: VoxelStore) -> None:
    """A search caches its parsed query, its compiled plan and (PostgreSQL) the words' queries
    per configuration -- never a row, nor the index's languages beyond one search: a voxel
    written after a search is found by the next one, in a language the index did not hold
    yet (stemmed in it, as a search with every cache empty does), and a deleted one is gone."""
    from thunderline.search import engine

    searcher = Searcher(store.engine)
    key = store.engine.url.render_as_string(hide_password=True)
    queries = [
        "cantar",  # the note's "cantaban" by its Spanish stem alone ('cant'): found only
        "quokkaphilie",  # by a search stemming in the index's languages as they are now
        '"quokkaphilie canciones"',
        "canciones",
        "cancion*",
        "quokkaphilie label:txt",
        "canción OR guido",
        "guido",
    ]
    for query in queries:  # every cache warm, with the languages of the index as it is
        searcher.search(query)
        searcher.search(query, order="time")
    assert searcher.search("quokkaphilie").hits == []
    assert "es" not in engine._KNOWN_LANGS[key]
    new = _note(store, "La quokkaphilie canciones: cantaban las canciones de Guido.", "es")
    try:
        after = {q: searcher.search(q).as_dict() for q in queries}
        assert [h["voxel_id"] for h in after["quokkaphilie"]["hits"]] == [new]
        assert new in {h["voxel_id"] for h in after['"quokkaphilie canciones"']["hits"]}
        assert new in {h["voxel_id"] for h in after["cantar"]["hits"]}
        assert "es" in engine._KNOWN_LANGS[key]  # read by the search, not kept from before
        engine.clear_caches()
        engine._KNOWN_LANGS.clear()
        assert after == {q: searcher.search(q).as_dict() for q in queries}
    finally:
        store.delete([new], actor="test", reason="cache test")
    for query in queries[:6]:
        assert new not in {h.voxel_id for h in searcher.search(query).hits}, query
