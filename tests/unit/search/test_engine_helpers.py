"""Snippet segments, cursors, facet links and CSV cells: the pure parts of search."""

from __future__ import annotations

import pytest

from thunderline.search.console import facet_filter
from thunderline.search.engine import (
    CursorError,
    Segment,
    decode_cursor,
    encode_cursor,
    segments,
)
from thunderline.search.export import encode
from thunderline.search.query import parse


def test_segments_split_marked_text() -> None:
    assert segments("a \x02hit\x03 b \x02two\x03") == [
        Segment("a "),
        Segment("hit", True),
        Segment(" b "),
        Segment("two", True),
    ]
    assert segments("") == [] and segments("plain") == [Segment("plain")]


def test_cursor_round_trip_and_refusals() -> None:
    cursor = encode_cursor("guido", "relevance", 3.25, 17)
    assert decode_cursor(cursor, "guido", "relevance") == (3.25, 17)
    with pytest.raises(CursorError, match="another query"):
        decode_cursor(cursor, "python", "relevance")
    with pytest.raises(CursorError, match="another query"):
        decode_cursor(cursor, "guido", "time")
    for junk in ("", "!!!", "e30", "bm90IGpzb24"):
        with pytest.raises(CursorError, match="malformed"):
            decode_cursor(junk, "guido", "relevance")


@pytest.mark.parametrize(
    ("facet", "value"),
    [("label", "pdf"), ("entity", "Guido van Rossum"), ("entity", 'say "x" (y)'), ("model", "a=b")],
)
def test_facet_links_parse_back(facet: str, value: str) -> None:
    assert parse(facet_filter(facet, value)) is not None


def test_csv_cells_flatten_and_escape() -> None:
    row = {"id": "1", "name": "bad\udcffname", "entities": [{"text": "A", "type": "ORG"}]}
    text = "".join(encode(iter([row]), "csv"))
    header, line = text.splitlines()
    assert header.startswith("id,name,source")
    assert "bad\\udcffname" in line and '""text"": ""A""' in line
    text.encode("utf-8")  # no lone surrogate left


@pytest.mark.parametrize(
    "body", ["", "plain", "caf\u00e9 \x02hit\x03 日本", "only \x03 end", "\x02" * 3, "ünï"]
)
def test_sentinels_are_spaced_out_as_translate_does(body: str) -> None:
    """The index writes a body with STX/ETX as spaces, the body itself when it has none."""
    from thunderline.search.index import _SENTINELS, _without_sentinels

    assert _without_sentinels(body) == body.translate(_SENTINELS)
