"""Bytes-safe names: exact round trips on the wire, escaped display."""

from __future__ import annotations

import json
import os

import pytest

from thunderline import names
from thunderline.events import CloudEvent, new_event

ODD = [
    os.fsdecode(b"bad-\xff\xfe.txt"),
    "ctl\x01\x1b[31m.txt",
    "evil\u202etxt.exe",
    "new\nline",
    "back\\slash",
    "plain café 日本",
]


@pytest.mark.parametrize("name", ODD)
def test_dumps_round_trips_and_is_valid_utf8(name: str) -> None:
    text = names.dumps({"name": name})
    text.encode("utf-8")  # never raises
    assert json.loads(text) == {"name": name}
    assert os.fsencode(json.loads(text)["name"]) == os.fsencode(name)


def test_valid_text_is_unchanged_on_the_wire() -> None:
    assert names.dumps({"n": "café"}) == '{"n": "café"}'
    assert names.wire_text("café") == "café"
    assert names.wire_text(os.fsdecode(b"a\xff")) == "a\\udcff"


@pytest.mark.parametrize("name", ODD)
def test_events_with_odd_names_round_trip(name: str) -> None:
    event = new_event("x.y", {"artifact": {"name": name, "path": f"/in/{name}"}})
    assert CloudEvent.from_json(event.to_bytes()) == event


def test_shown_escapes_what_a_terminal_would_interpret() -> None:
    assert names.shown(os.fsdecode(b"bad-\xff.txt")) == "bad-\\xff.txt"
    assert names.shown("\x1b[31mred\x07") == "\\x1b[31mred\\x07"
    assert names.shown("evil\u202etxt") == "evil\\u202etxt"
    assert names.shown("a\\x1b") == "a\\\\x1b"  # a literal backslash cannot fake an escape
    assert names.shown("\u0085\x7f") == "\\x85\\x7f"
    assert names.shown("café 日本") == "café 日本"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ascii only",
        "plain café 日本 \U0001f600",
        os.fsdecode(b"bad-\xff\xfe.txt"),
        "caf\u00e9 \ud800 lone high, \udfff lone low, \U0001f600 a pair",
        "\udc80" * 3,
    ],
)
def test_escaping_is_the_regex_form_on_every_text(text: str) -> None:
    """The fast paths (ASCII, strict UTF-8) give what the surrogate regex alone gives."""
    by_regex = names._SURROGATE.sub(names._escape_surrogate, text)
    assert names.wire_text(text) == by_regex
    value = {"k": text, "l": [text, 1]}
    dumped = names._SURROGATE.sub(
        names._escape_surrogate, json.dumps(value, ensure_ascii=False, sort_keys=True)
    )
    assert names.dumps(value, sort_keys=True) == dumped
    assert names.dumps_bytes(value, sort_keys=True) == dumped.encode("utf-8")
