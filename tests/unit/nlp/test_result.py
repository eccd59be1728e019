"""NlpResult schema 1.0: fields, forward compatibility, version checks, reply parsing."""

from __future__ import annotations

import json

import pytest

from thunderline.nlp.result import (
    SCHEMA_VERSION,
    NlpErrorReply,
    NlpResult,
    parse_reply,
    request_line,
)

V1 = {
    "version": "1.0",
    "doc_id": "d1",
    "lang": "en",
    "entities": [{"text": "Paris", "label": "GPE", "start": 0, "end": 5}],
    "noun_chunks": [{"text": "Paris", "start": 0, "end": 5}],
    "sentences": [{"text": "Paris is nice.", "start": 0, "end": 14}],
    "confidence": 0.9,
}


def test_schema_version_and_fields() -> None:
    result = NlpResult.model_validate(V1)
    assert SCHEMA_VERSION == "1.1" and result.version == "1.0"  # a 1.1 reader reads 1.0
    assert result.chunks == 1 and result.batch_docs == 1
    assert result.entities[0].label == "GPE" and result.sentences[0].end == 14
    assert result.to_dict()["entities"][0] == V1["entities"][0]


def test_a_1_0_reader_accepts_extra_fields_and_keeps_them() -> None:
    newer = {
        **V1,
        "version": "1.3",
        "sentiment": {"polarity": 0.4},
        "entities": [{**V1["entities"][0], "kb_id": "Q90"}],
    }
    result = NlpResult.from_json(json.dumps(newer))
    assert result.doc_id == "d1" and result.version == "1.3"
    dumped = result.to_dict()
    assert dumped["sentiment"] == {"polarity": 0.4}
    assert dumped["entities"][0]["kb_id"] == "Q90"


def test_other_major_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported schema version"):
        NlpResult.model_validate({**V1, "version": "2.0"})


@pytest.mark.parametrize("bad", [{**V1, "confidence": 1.5}, {**V1, "doc_id": None}])
def test_invalid_results_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        NlpResult.model_validate(bad)


def test_parse_reply_shapes() -> None:
    assert isinstance(parse_reply(json.dumps(V1)), NlpResult)
    err = parse_reply(b'{"version":"1.0","doc_id":"x","error":{"kind":"timeout","message":"m"}}')
    assert isinstance(err, NlpErrorReply) and err.error.kind == "timeout"
    for junk in (b"not json", b"[1]", b'{"version":"1.0"}', b"\xff\xfe"):
        with pytest.raises(ValueError):
            parse_reply(junk)


def test_request_line_is_one_line_even_with_newlines_and_surrogates() -> None:
    line = request_line("id", "two\nlines \ud800", "en")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    decoded = json.loads(line.decode("utf-8", "surrogatepass"))
    assert decoded == {"version": "1.1", "doc_id": "id", "text": "two\nlines \ud800", "lang": "en"}
