"""Stemming per language (SQLite's ``stems`` column) and the snippet of a stemmed match."""

from __future__ import annotations

from thunderline.search.document import IndexDoc, content_hash
from thunderline.search.engine import _plan
from thunderline.search.query import Words, parse, stemmed
from thunderline.search.stem import algorithm, body_snippet, stem_words, stems_of


def test_languages_map_to_snowball_and_english_keeps_porter() -> None:
    assert algorithm("de") == "german"
    assert algorithm("fr-CA") == "french"
    assert algorithm("en") is None  # FTS5's Porter tokenizer does English
    assert algorithm(None) is None and algorithm("xx") is None


def test_stems_are_the_body_words_in_order() -> None:
    text = "Die Verträge der Häuser, 2019 geschlossen; Rechnungen_folgen."
    assert stems_of(text, "de") == "die vertrag der haus 2019 geschloss rechnung folg"
    assert stems_of(text, "en") == ""
    assert stem_words(["Häuser", "Hauses"], "de") == ["haus", "haus"]
    assert stem_words(["généraux", "Générales"], "fr") == ["général", "général"]


def test_query_terms_are_stemmed_per_language_but_not_prefixes() -> None:
    assert stemmed(Words(("alten", "Häuser")), "de") == ("alt", "haus")
    assert stemmed(Words(("häus",), prefix=True), "de") is None
    assert stemmed(Words(("houses",)), "en") is None


def test_the_match_expression_adds_the_stems_column_only_for_other_languages() -> None:
    tree = parse('"alten Häuser" NOT miete')
    english = _plan("sqlite", tree, ["en"])
    assert not any("stems" in str(v) for v in english.params.values())
    assert english.params == _plan("sqlite", tree).params  # as before stemming per language
    german = _plan("sqlite", tree, ["en", "de"])
    match = next(v for v in german.params.values() if "stems" in str(v))
    assert 'stems : "alt haus"' in match and 'stems : "miet"' in match
    pg = _plan("postgresql", parse("Häuser"), ["de", "fr"])
    assert "'german'" in pg.where + str(pg.tsquery) and "'french'" in str(pg.tsquery)


def test_body_snippet_highlights_the_original_words_of_stem_matches() -> None:
    body = "Die Wohnung liegt im zweiten Stock eines alten Hauses in der Altstadt."
    stems = stems_of(body, "de").replace("alt haus", "\x02alt haus\x03")
    marked = body_snippet(body, stems)
    assert marked is not None
    assert "\x02alten\x03 \x02Hauses\x03" in marked
    assert body_snippet(body, stems_of(body, "de")) is None  # nothing matched
    assert body_snippet(body + " extra", stems) is None  # words do not line up


def test_content_hash_names_the_stemmer_for_other_languages_only() -> None:
    doc = IndexDoc("v", 0.0, "txt", "text", "en", None, 1, "a.txt", "Häuser")
    german = IndexDoc("v", 0.0, "txt", "text", "de", None, 1, "a.txt", "Häuser")
    assert content_hash(doc) != content_hash(german)
    # the English hash is what it was before stemming per language (layout 2, no stemmer)
    assert content_hash(doc) == "010dc08589d08cc52bc8f1c835f9e17b6d6419e0e8fd8b3222f04874455b3251"
