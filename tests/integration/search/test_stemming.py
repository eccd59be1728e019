"""Stemming per language: German and French documents ingested through the real pipeline are
found by differently-inflected forms on SQLite (Snowball stems in ``search_fts.stems``) and on
PostgreSQL (the language's text search configuration); English behaves as before.

The inflections are chosen so that English stemming alone does not join them (Porter makes
``hauser`` / ``haus``, ``generaux`` / ``gener``, ``kundigung`` / ``kundigungen``): a store
that stemmed every language as English would fail these tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from tests.integration.search._rank import assert_reduced_rank_exact
from tests.integration.search._stores import ingest_inbox, pg_schema_url, store_on

from thunderline.config import Settings
from thunderline.search.engine import Searcher
from thunderline.search.lifecycle import check, rebuild
from thunderline.voxel.store import VoxelStore

GERMAN = (
    "Der Mietvertrag wird zwischen dem Vermieter und der Mieterin geschlossen. Die Wohnung "
    "liegt im zweiten Stock eines alten Hauses in der Altstadt von Freiburg. Die monatliche "
    "Miete beträgt achthundert Euro und ist bis zum dritten Werktag eines jeden Monats zu "
    "zahlen. Alle Rechnungen für Strom und Wasser begleicht die Mieterin direkt bei den "
    "Stadtwerken. Kündigungen müssen schriftlich erfolgen und sind nur zum Ende eines Monats "
    "möglich. Haustiere sind in der Wohnung nur mit der Zustimmung des Vermieters erlaubt.\n"
)
FRENCH = (
    "Le présent contrat de location est conclu entre le propriétaire et la locataire. Les "
    "loyers sont payés chaque mois avant le cinquième jour. Les charges générales de "
    "l'immeuble comprennent l'eau, le chauffage et l'entretien des espaces communs. La "
    "locataire s'engage à maintenir les lieux en bon état et à signaler rapidement tout "
    "dommage au propriétaire. Le dépôt de garantie sera restitué dans un délai de deux mois "
    "après la remise des clés.\n"
)
ENGLISH = (
    "This rental agreement is made between the landlord and the tenant. The rent is paid "
    "every month before the fifth day. The general charges of the building include water, "
    "heating and the upkeep of the shared spaces. The tenant agrees to keep the premises in "
    "good condition and to report any damage to the landlord promptly.\n"
)
FILES = {"mietvertrag.txt": GERMAN, "contrat.txt": FRENCH, "agreement.txt": ENGLISH}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("stemming")
    inbox = root / "in"
    inbox.mkdir()
    for name, body in FILES.items():
        (inbox / name).write_text(body, encoding="utf-8")
    return ingest_inbox(root)


@pytest.fixture(scope="module")
def pg_store_url(pg_url: str, ingested: Settings) -> Iterator[str]:
    yield from pg_schema_url(pg_url, "tl_stem")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, ingested: Settings) -> Iterator[VoxelStore]:
    yield from store_on(request, ingested)


def names(store: VoxelStore, query: str) -> list[str]:
    return sorted({hit.name for hit in Searcher(store.engine).search(query, limit=50).hits})


def test_the_pipeline_detected_the_languages(store: VoxelStore) -> None:
    assert names(store, "lang:de") == ["mietvertrag.txt"]
    assert names(store, "lang:fr") == ["contrat.txt"]
    assert names(store, "lang:en") == ["agreement.txt"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Häuser", ["mietvertrag.txt"]),  # the text says "Hauses"
        ("Kündigung", ["mietvertrag.txt"]),  # "Kündigungen"
        ("Rechnung", ["mietvertrag.txt"]),  # "Rechnungen"
        ('"alten Häuser"', ["mietvertrag.txt"]),  # a phrase: "alten Hauses"
        ("généraux", ["contrat.txt"]),  # "générales"
        ("dommages", ["contrat.txt"]),  # "dommage"
        ("généraux lang:fr", ["contrat.txt"]),
        ("Häuser lang:fr", []),
    ],
)
def test_an_inflected_form_finds_the_document(
    store: VoxelStore, query: str, expected: list[str]
) -> None:
    assert names(store, query) == expected


def test_english_is_unchanged(store: VoxelStore) -> None:
    assert names(store, "agreements") == ["agreement.txt"]  # Porter, as before
    assert names(store, "landlords") == ["agreement.txt"]
    assert names(store, "upkeep") == ["agreement.txt"]
    assert names(store, "tenan*") == ["agreement.txt"]  # a prefix is looked up as typed
    hits = Searcher(store.engine).search("landlord").hits
    assert any(s.match and s.text.lower().startswith("landlord") for s in hits[0].snippet)


def test_a_stemmed_match_keeps_the_original_text_for_the_snippet(store: VoxelStore) -> None:
    hit = Searcher(store.engine).search("Häuser").hits[0]
    shown = "".join(s.text for s in hit.snippet)
    assert "Hauses" in shown or "Mietvertrag" in shown  # the document's own words
    assert "haus " not in shown.lower().replace("hauses", "")  # never the stemmed column


def test_rebuild_restores_the_stems_of_a_stale_row(store: VoxelStore) -> None:
    """A German row written before stemming (no stems, older content hash) is reported by
    verify and rewritten by ``index rebuild``; the inflected query works again."""
    german = Searcher(store.engine).search("lang:de").hits[0].voxel_id
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE search_docs SET content_sha256 = :old WHERE voxel_id = :v"),
            {"old": "0" * 64, "v": german},
        )
        if store.engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "UPDATE search_fts SET stems = '' WHERE rowid = "
                    "(SELECT doc_no FROM search_docs WHERE voxel_id = :v)"
                ),
                {"v": german},
            )
    if store.engine.dialect.name == "sqlite":
        assert names(store, "Häuser") == []  # Porter alone: "hauser" is not "haus"
    assert [p.reason for p in check(store, [german])] == ["index_stale"]
    report = rebuild(store)
    assert report.written >= 1
    assert check(store, [german]) == []
    assert names(store, "Häuser") == ["mietvertrag.txt"]


def test_postgresql_reduced_ranking_is_exact_in_every_language(
    store: VoxelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With German and French indexed, a word's tsquery has a variant per configuration
    (simple, english, german, french): each match is ranked on its own language's variant
    where that gives its exact ``ts_rank_cd`` score (thunderline.search.pgrank), the pages
    are those of the full query."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL ranking")
    queries = [
        "Kündigungen",
        "Wohnung",
        "loyers",
        "locataire",
        "tenant",
        '"rental agreement"',
        "Mieterin lang:de",
        "landlord OR propriétaire",
    ]
    counted = assert_reduced_rank_exact(store, queries, monkeypatch)
    assert sum(reduced for _, reduced in counted.values()) > 0, counted


def test_indexed_languages_in_order(store: VoxelStore) -> None:
    """The index's languages, sorted, on both backends (PostgreSQL: one recursive statement)."""
    from thunderline.search.index import indexed_languages

    with store.engine.connect() as conn:
        assert indexed_languages(conn) == ["de", "en", "fr"]
        assert indexed_languages(conn, limit=2) == ["de", "en"]


@pytest.mark.parametrize("stale", [["en"], [], ["de", "en", "fr", "it"]])
def test_a_stale_guess_of_the_languages_changes_no_result(
    store: VoxelStore, stale: list[str]
) -> None:
    """PostgreSQL compiles a search with the languages the last one found and reads them
    again with the words' variants: a guess gone stale (a language indexed or removed since)
    is corrected in the same search -- the same hits and scores as with the right one."""
    from thunderline.search import engine
    from thunderline.search.index import indexed_languages

    searcher = Searcher(store.engine)
    key = store.engine.url.render_as_string(hide_password=True)
    for query in ["Häuser", "généraux", "agreements", '"alten Häuser"']:
        engine._KNOWN_LANGS.pop(key, None)
        expected = [(h.voxel_id, h.score, h.snippet) for h in searcher.search(query).hits]
        engine._KNOWN_LANGS[key] = list(stale)
        got = [(h.voxel_id, h.score, h.snippet) for h in searcher.search(query).hits]
        assert got == expected, query
        with store.engine.connect() as conn:
            assert engine._KNOWN_LANGS[key] == indexed_languages(conn)
