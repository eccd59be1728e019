"""CloudEvents envelope: round trip, chains, malformed input."""

from __future__ import annotations

import json

import pytest

from thunderline.errors import MalformedEventError
from thunderline.events import (
    INGEST_CLASSIFIED,
    INGEST_RECEIVED,
    CloudEvent,
    dlq_type_for,
    new_event,
)


def test_json_round_trip_keeps_every_attribute() -> None:
    event = new_event(
        INGEST_RECEIVED, {"artifact": {"name": "café menu.txt"}, "route": ["classify"]}
    )
    again = CloudEvent.from_json(event.to_json())
    assert again == event
    raw = json.loads(event.to_bytes())
    assert raw["specversion"] == "1.0"
    assert raw["correlationid"] == event.id
    assert "causationid" not in raw  # the root of a chain has no cause
    assert "café" in event.to_json()  # UTF-8, not escaped


def test_derive_keeps_correlation_and_sets_causation() -> None:
    root = new_event(INGEST_RECEIVED, {"route": ["classify"]})
    child = root.derive(INGEST_CLASSIFIED, {"route": []})
    assert child.correlationid == root.id
    assert child.causationid == root.id
    assert child.id != root.id
    assert child.id > root.id  # UUIDv7 sorts by time


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "x"}', "correlationid"),
        (b'{"type": "x", "correlationid": "c", "specversion": "0.3"}', "specversion"),
        (b'{"type": "x", "correlationid": "c", "time": "yesterday"}', "RFC 3339"),
        (b'{"type": "", "correlationid": "c"}', "type"),
        (b'{"type": "x", "correlationid": "c", "data": 3}', "data"),
        (b'{"type": "x", "correlationid": "c", "surprise": 1}', "surprise"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_malformed_events_raise_a_typed_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(MalformedEventError) as info:
        CloudEvent.from_json(raw)
    assert fragment in str(info.value)
    assert info.value.reason == "malformed_event"


def test_dlq_type_names_follow_the_design() -> None:
    assert dlq_type_for("classify") == "system.dlq.classify_failed"
    assert dlq_type_for("nlp") == "system.dlq.nlp_failed"
    assert dlq_type_for("infer") == "system.dlq.ml_inference_failed"
    assert dlq_type_for("package") == "system.dlq.voxel_failed"
