"""The result types: cheap dataclasses in the worker, validated once where the summary is built.

The summary's JSON and JSON Schema are pinned to what the former pydantic models gave (the
expected line and ``tests/fixtures/extract/summary-schema.json`` were written by them).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from thunderline.extract.result import (
    DocMetadata,
    EmbeddedPart,
    ExtractResult,
    ExtractSummary,
    GeoPoint,
    Heading,
    OcrInfo,
    Segment,
    parse_result,
    result_json,
    summarize,
)

SCHEMA = Path(__file__).resolve().parents[2] / "fixtures" / "extract" / "summary-schema.json"
#: summarize(_sample(), ...) as the pydantic models serialised it (ints of float fields as floats).
EXPECTED = '{"text_ref":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","text_bytes":33,"chars":24,"content":"prose","segments":[{"kind":"page","index":0,"start":0,"end":5,"title":"One"},{"kind":"page","index":1,"start":7,"end":24,"title":null}],"segments_total":2,"headings":[{"level":1,"text":"Title","start":0}],"metadata":{"title":"Tytuł","authors":["Ada","Eve"],"subject":null,"created":"2024-05-06T07:08:09Z","modified":null,"language":null,"page_count":2,"width":640,"height":480,"duration_s":3.0,"gps":{"lat":48.8566,"lon":2.3522,"alt_m":35.0},"software":"cam"},"raw":{"k":"v","n":"1"},"parts":[{"index":0,"name":"a.txt","size":3,"kind":"attachment","mime":"text/plain","spool":null,"sha256":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}],"method":"pdf","library":"pypdfium2","library_version":"4.30.0","encoding":"utf-8","truncated":false,"bytes_in":1234,"ocr":{"engine":"rapidocr","version":"1.0","mean_confidence":0.9,"lines":2,"low_confidence_lines":1,"words":5,"low_confidence_words":1,"threshold":0.5},"warnings":["w1"],"duration_ms":12.346}'


def _sample() -> ExtractResult:
    return ExtractResult(
        text="Title\n\nZażółć gęślą jaźń",
        segments=[
            Segment(kind="page", index=0, start=0, end=5, title="One"),
            Segment(kind="page", index=1, start=7, end=24),
        ],
        headings=[Heading(level=1, text="Title", start=0)],
        metadata=DocMetadata(
            title="Tytuł",
            authors=["Ada", "Eve"],
            created=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
            page_count=2,
            width=640,
            height=480,
            duration_s=3,
            gps=GeoPoint(lat=48.8566, lon=2.3522, alt_m=35),
            software="cam",
        ),
        raw={"k": "v", "n": "1"},
        parts=[EmbeddedPart(index=0, name="a.txt", size=3, mime="text/plain", spool="part-00000")],
        content="prose",
        method="pdf",
        library="pypdfium2",
        library_version="4.30.0",
        encoding="utf-8",
        bytes_in=1234,
        ocr=OcrInfo(
            engine="rapidocr",
            version="1.0",
            mean_confidence=0.9,
            lines=2,
            low_confidence_lines=1,
            words=5,
            low_confidence_words=1,
            threshold=0.5,
        ),
        warnings=["w1"],
    )


def _summary(found: ExtractResult) -> ExtractSummary:
    stored = [dataclasses.replace(p, spool=None, sha256="b" * 64) for p in found.parts]
    return summarize(found, "sha256:" + "a" * 64, stored, 12.3456)


def test_summary_json_is_what_the_pydantic_models_wrote() -> None:
    assert _summary(_sample()).model_dump_json() == EXPECTED


def test_summary_json_schema_is_unchanged() -> None:
    assert ExtractSummary.model_json_schema() == json.loads(SCHEMA.read_text("utf-8"))


def test_summary_read_back_from_its_json_is_equal() -> None:
    summary = _summary(_sample())
    again = ExtractSummary.model_validate_json(summary.model_dump_json())
    assert again == summary
    assert isinstance(again.metadata, DocMetadata) and isinstance(again.segments[0], Segment)


def test_the_worker_line_parses_back_to_an_equal_result() -> None:
    found = _sample()
    assert parse_result(json.loads(result_json(found))) == found


@pytest.mark.parametrize(
    "bad",
    [
        {"segments": [Segment(kind="page", index=-1, start=0, end=1)]},
        {"headings": [Heading(level=12, text="x", start=0)]},
        {"metadata": DocMetadata(gps=GeoPoint(lat=91.0, lon=0.0))},
        {"metadata": DocMetadata(width=-3)},
        {"metadata": DocMetadata(title=7)},  # type: ignore[arg-type]
        {"bytes_in": -1},
    ],
)
def test_an_extractor_value_out_of_bounds_is_refused_where_the_summary_is_built(
    bad: dict[str, object],
) -> None:
    found = dataclasses.replace(_sample(), **bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        summarize(found, None, [], 0.0)
    with pytest.raises(ValidationError):
        parse_result(json.loads(result_json(found)))


def test_a_stored_part_with_a_bad_digest_is_refused() -> None:
    part = EmbeddedPart(index=0, name="a", size=1, sha256="not-hex")
    with pytest.raises(ValidationError):
        summarize(_sample(), None, [part], 0.0)


def test_the_worker_line_refuses_unknown_fields() -> None:
    line = json.loads(result_json(_sample()))
    line["surprise"] = 1
    with pytest.raises(ValidationError):
        parse_result(line)


def test_the_summary_holds_its_own_copies_and_stays_frozen() -> None:
    """The value types are mutable dataclasses (cheap to build); the summary is not touched by
    a change to the worker's objects after it was made, and its own fields cannot be set."""
    found = _sample()
    summary = _summary(found)
    before = summary.model_dump_json()
    found.metadata.title = "changed"
    found.segments[0].end = 0
    found.headings[0].text = "changed"
    assert summary.model_dump_json() == before
    assert summary.metadata is not found.metadata
    with pytest.raises(ValidationError):
        summary.metadata = DocMetadata()  # type: ignore[misc]


def test_the_voxel_seals_plain_json_not_the_value_objects() -> None:
    """What is sealed is ``model_dump(mode="json")`` of the summary: dicts, lists and scalars."""
    dumped = _summary(_sample()).model_dump(mode="json", exclude_none=True)

    def plain(value: object) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, str | int | float | bool)

    assert plain(dumped)
    assert dumped["metadata"]["title"] == "Tytuł"


def test_empty_metadata_is_empty() -> None:
    assert DocMetadata().is_empty()
    assert not DocMetadata(title="x").is_empty()
