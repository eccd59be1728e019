"""The query language: what each form parses to, and where a malformed query fails."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thunderline.search.query import (
    And,
    Field,
    Not,
    Or,
    QuerySyntaxError,
    Words,
    parse,
)


def test_words_phrases_prefix_and_implicit_and() -> None:
    assert parse("python") == Words(("python",))
    assert parse('"Guido van Rossum"') == Words(("Guido", "van", "Rossum"))
    assert parse("pyth*") == Words(("pyth",), prefix=True)
    assert parse("foo-bar") == Words(("foo", "bar"))  # punctuation splits: a phrase
    assert parse("a b") == And((Words(("a",)), Words(("b",))))
    assert parse("") is None and parse("   ") is None


def test_boolean_operators_and_grouping() -> None:
    assert parse("a OR b c") == Or((Words(("a",)), And((Words(("b",)), Words(("c",))))))
    assert parse("(a OR b) c") == And((Or((Words(("a",)), Words(("b",)))), Words(("c",))))
    assert parse("a AND NOT b") == And((Words(("a",)), Not(Words(("b",)))))
    assert parse("a -b") == And((Words(("a",)), Not(Words(("b",)))))
    assert parse("a or b") == And((Words(("a",)), Words(("or",)), Words(("b",))))  # lower: words


def test_fields_are_typed() -> None:
    assert parse("label:pdf") == Field("label", ":", "pdf")
    assert parse('entity:"Guido van Rossum"') == Field("entity", ":", "Guido van Rossum")
    assert parse("entity:Guido*") == Field("entity", ":", "Guido", prefix=True)
    assert parse("entity.type:ORG") == Field("entity.type", ":", "ORG")
    assert parse("model:image_classifier=sneaker") == Field(
        "model", ":", "image_classifier=sneaker"
    )
    assert parse("size>10kb") == Field("size", ">", 10_000)
    assert parse("size<=2MiB") == Field("size", "<=", 2 * 1024 * 1024)
    assert parse("after:2019") == Field("after", ":", 1546300800.0)
    assert parse("before:2019-05-03") == Field("before", ":", 1556841600.0)


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ("foo AND (bar", 8, "missing ')'"),
        ('say "hello', 4, "unclosed quote"),
        ("foo AND", 7, "ends where a term"),
        ("OR foo", 0, "OR needs a term"),
        ("a ) b", 2, "unexpected ')'"),
        ("()", 1, "empty parentheses"),
        ("colour:red", 0, "unknown field 'colour'"),
        ("size>lots", 5, "not a size"),
        ("after:yesterday", 6, "not a date"),
        ("label>pdf", 5, "does not take '>'"),
        ("label:", 6, "needs a value"),
        ("NOT", 3, "ends where a term"),
        ("a !!!", 2, "no letters or digits"),
    ],
)
def test_malformed_queries_say_where(query: str, position: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError, match=re.escape(message)) as info:
        parse(query)
    assert info.value.position == position
    assert info.value.details["position"] == position


def test_limits() -> None:
    with pytest.raises(QuerySyntaxError, match="longer than"):
        parse("a" * 1001)
    with pytest.raises(QuerySyntaxError, match="too many terms"):
        parse(" ".join(["w"] * 65))
    with pytest.raises(QuerySyntaxError, match="NUL"):
        parse("a\x00b")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_any_text_parses_or_fails_typed(query: str) -> None:
    try:
        tree = parse(query)
    except QuerySyntaxError as exc:
        assert 0 <= exc.position <= len(query)
        return
    assert tree is None or isinstance(tree, Words | Field | Not | And | Or)
