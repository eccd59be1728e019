"""Typed event data: the models, the registry, validation once, the wire form, contracts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from thunderline.errors import EventContractError, MalformedEventError
from thunderline.eventdata import (
    REGISTRY,
    Artifact,
    Classified,
    DlqRecord,
    IngestRequest,
    NlpProcessed,
    VoxelCreated,
    check_output,
    data_of,
    extend,
    model_for,
    original_data,
    register,
    schemas,
    to_wire,
    typed_event,
    validate_data,
)
from thunderline.events import (
    INGEST_CLASSIFIED,
    INGEST_RECEIVED,
    NLP_PROCESSED,
    VOXEL_CREATED,
    CloudEvent,
    new_event,
)
from thunderline.objects import LocalObjectStore
from thunderline.testing import classification, classified, ingest

SHA = "ab" * 32


def test_every_pipeline_event_type_has_a_model() -> None:
    assert model_for(INGEST_RECEIVED) is IngestRequest
    assert model_for(INGEST_CLASSIFIED) is Classified
    assert model_for(NLP_PROCESSED) is NlpProcessed
    assert model_for(VOXEL_CREATED) is VoxelCreated
    assert model_for("system.dlq.anything_failed") is DlqRecord
    with pytest.raises(MalformedEventError, match="unknown event type"):
        model_for("system.nothing")


def test_surrogate_escaped_names_and_paths_pass_untouched() -> None:
    raw = os.fsdecode(b"/data/caf\xe9 \xff.txt")  # undecodable bytes -> surrogate escapes
    assert "\udce9" in raw
    artifact = Artifact(name=Path(raw).name, path=raw, root="/data", source="file:///x")
    event = typed_event(INGEST_RECEIVED, IngestRequest(artifact=artifact))
    assert event.data["artifact"]["path"] == raw
    again = CloudEvent.from_dict(event.to_dict())
    assert data_of(again, IngestRequest).artifact.path == raw


def test_wire_form_keeps_the_field_names_and_leaves_unset_optionals_out() -> None:
    artifact = Artifact(name="a.txt", path="/a.txt")
    wire = to_wire(IngestRequest(artifact=artifact))
    assert wire == {"artifact": {"name": "a.txt", "path": "/a.txt"}, "route": ["classify"]}
    # a DLQ record says "original": null when there was no event at all
    record = DlqRecord(stage="s", reason="r", error={"type": "E", "message": "m"}, attempts=1)
    assert to_wire(record)["original"] is None


def test_validated_once_and_cached_on_the_event() -> None:
    event = new_event(
        INGEST_RECEIVED, {"artifact": {"name": "a", "path": "/a"}, "route": ["classify"]}
    )
    first = validate_data(event)
    assert validate_data(event) is first
    assert data_of(event, IngestRequest) is first
    with pytest.raises(MalformedEventError, match="carries IngestRequest, not Classified"):
        data_of(event, Classified)


@pytest.mark.parametrize(
    ("artifact", "problem"),
    [
        ({"name": "a"}, "needs a path or a payload_ref"),
        ({"name": "a", "payload_ref": "sha1:xx"}, "payload_ref"),
        ({"name": "a", "payload_ref": f"sha256:{SHA}", "sha256": "cd" * 32}, "does not match"),
        ({"name": "a", "path": "/a", "size": -1}, "size"),
        ({"path": "/a"}, "name"),
    ],
)
def test_bad_artifacts_are_malformed_with_every_problem_listed(
    artifact: dict[str, object], problem: str
) -> None:
    event = new_event(INGEST_RECEIVED, {"artifact": artifact})
    with pytest.raises(MalformedEventError, match=problem) as info:
        validate_data(event)
    assert info.value.details["errors"]


def test_classified_needs_a_stored_artifact_and_refuses_unknown_fields(tmp_path: Path) -> None:
    good = classified(LocalObjectStore(tmp_path), b"hello")
    raw = dict(good.data)
    raw["artifact"] = {"name": "a", "path": "/a"}  # not stored
    raw["extra"] = 1
    with pytest.raises(MalformedEventError) as info:
        validate_data(new_event(INGEST_CLASSIFIED, raw))
    locs = {e["loc"] for e in info.value.details["errors"]}
    assert "extra" in locs and any(loc.startswith("artifact.") for loc in locs)


def test_extend_carries_everything_forward(tmp_path: Path) -> None:
    event = classified(LocalObjectStore(tmp_path), b"hello", route=["nlp", "package"])
    base = data_of(event, Classified)
    nlp = {"doc_id": "d", "lang": "en", "confidence": 0.5, "future_field": [1]}
    processed = extend(base, NlpProcessed, nlp=nlp)
    assert processed.artifact == base.artifact and processed.route == ["nlp", "package"]
    assert processed.nlp.lang == "en"
    assert to_wire(processed)["nlp"]["future_field"] == [1]  # NlpResult 1.x is open


def test_outputs_must_be_exactly_their_types_model(tmp_path: Path) -> None:
    data = data_of(classified(LocalObjectStore(tmp_path), b"x"), Classified)
    check_output(INGEST_CLASSIFIED, data)
    with pytest.raises(EventContractError, match="must carry NlpProcessed"):
        check_output(NLP_PROCESSED, data)


def test_original_data_of_a_dlq_record() -> None:
    start = ingest(Artifact(name="a", path="/a"))
    record = DlqRecord(
        stage="classify",
        reason="not_found",
        error={"type": "ArtifactNotFoundError", "message": "gone"},
        attempts=1,
        original=start.to_dict(),
    )
    got = original_data(record)
    assert isinstance(got, IngestRequest) and got.artifact.path == "/a"
    broken = record.model_copy(update={"original": {"type": "x.y", "data": {}}})
    assert original_data(broken) is None


def test_register_refuses_rebinding_a_type() -> None:
    register(INGEST_RECEIVED, IngestRequest)  # same model: fine
    with pytest.raises(ValueError, match="already bound"):
        register(INGEST_RECEIVED, Classified)
    assert REGISTRY[INGEST_RECEIVED] is IngestRequest


def test_schemas_cover_every_type_and_name_the_fields() -> None:
    found = schemas()
    assert set(found) == {*REGISTRY, "system.dlq.*"}
    assert "classification" in found[INGEST_CLASSIFIED]["properties"]
    assert "nlp" in found[NLP_PROCESSED]["properties"]
    assert {"stage", "reason", "error"} <= set(found["system.dlq.*"]["required"])


def test_classification_score_is_a_probability() -> None:
    with pytest.raises(ValueError, match="score"):
        classification("txt", score=1.5)
