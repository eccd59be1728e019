"""The worker's answer line: one JSON object the supervisor parses back into the result."""

from __future__ import annotations

import io
import json

from thunderline.extract.result import DocMetadata, ExtractResult, Segment, parse_result
from thunderline.extract.worker import _Channel


def _line(found: ExtractResult) -> dict[str, object]:
    stream = io.StringIO()
    _Channel(stream).send_result("job-7", found)
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    message = json.loads(text)
    assert isinstance(message, dict)
    return message


def test_result_line_round_trips_through_the_supervisor_parse() -> None:
    found = ExtractResult(
        text='Zażółć gęślą jaźń\n"quoted" \\ back',
        segments=[Segment(kind="page", index=0, start=0, end=17)],
        metadata=DocMetadata(title="Tytuł", authors=["Ada"]),
        raw={"k": "v"},
        content="prose",
        method="plain",
        library="stdlib",
        library_version="3.11",
    )
    message = _line(found)
    assert message["id"] == "job-7" and message["type"] == "result"
    assert parse_result(message["result"]) == found


def test_text_with_a_lone_surrogate_takes_the_slow_path_and_still_arrives() -> None:
    found = ExtractResult(text="a\udc80b", method="plain", library="stdlib", library_version="1")
    stream = io.StringIO()
    _Channel(stream).send_result(3, found)
    message = json.loads(stream.getvalue())
    assert message["id"] == 3
    assert parse_result(message["result"]).text == "a\udc80b"
