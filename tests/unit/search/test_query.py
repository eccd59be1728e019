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
    QueryTooLongError,
    Words,
    excerpt,
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
    with pytest.raises(QueryTooLongError) as long:
        parse("abcdefghij" * 300)
    message = str(long.value)
    assert "3000 characters" in message and "limit is 1000" in message, message
    assert "'abcdefghijabcdefghij'..." in message and len(message) < 120, message
    assert long.value.details == {"position": 1000, "length": 3000, "limit": 1000}
    assert isinstance(long.value, QuerySyntaxError) and long.value.reason == "query_syntax"
    parse("a" * 1000)  # at the limit: fine
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


@pytest.mark.parametrize(
    "query",
    [
        "size>" + "9x" * 450,
        "after:" + "y" * 900,
        "b" * 900 + ":x",
        "!" * 900,
        "w " * 64 + "z" * 800,
    ],
)
def test_no_error_repeats_much_of_the_query(query: str) -> None:
    """A mistake in a long (allowed) query names it with a short excerpt, not the whole input."""
    with pytest.raises(QuerySyntaxError) as info:
        parse(query)
    assert len(str(info.value)) < 200, str(info.value)
    assert set(info.value.details) == {"position"}


def test_excerpt() -> None:
    assert excerpt("short") == "'short'"
    assert excerpt("x" * 50, 10) == "'xxxxxxxxxx'..."
