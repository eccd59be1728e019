"""Scale-out parts that need no service: stage lists, queue arguments, keys, replays."""

from __future__ import annotations

import uuid

import pytest

from thunderline.bus.rabbitmq import RabbitMQBus, stable_uuid7
from thunderline.config import load_settings
from thunderline.dlq.record import dead_letter
from thunderline.errors import ConfigError
from thunderline.events import DLQ_VOXEL, INGEST_RECEIVED, VOXEL_CREATED, CloudEvent, new_event
from thunderline.outcomes import OutcomeRecord, artifact_key
from thunderline.worker.runner import default_stages, parse_stages
from thunderline.worker.settle import expected, final_outcomes, settled


def test_default_stages_follow_the_settings() -> None:
    assert default_stages(load_settings()) == ["classify", "extract", "nlp", "package", "collect"]
    with_infer = default_stages(load_settings(onnx_enabled=True))
    assert with_infer == ["classify", "extract", "nlp", "infer", "package", "collect"]
    assert default_stages(load_settings(enable_ml_pipeline=False)) == [
        "classify",
        "package",
        "collect",
    ]


def test_parse_stages() -> None:
    assert parse_stages("classify, package,collect,classify") == ["classify", "package", "collect"]
    with pytest.raises(ConfigError, match="unknown stage"):
        parse_stages("classify,bogus")
    with pytest.raises(ConfigError):
        parse_stages(" , ")


def test_queue_arguments() -> None:
    bus = RabbitMQBus("amqp://u:secret@h:5672/v", max_attempts=4, queue_max=50, prefix="p")
    stage = bus.queue_arguments("classify")
    assert stage["x-queue-type"] == "quorum" and stage["x-delivery-limit"] == 4
    assert stage["x-dead-letter-routing-key"] == "p.dlq"
    assert stage["x-dead-letter-strategy"] == "at-least-once"
    assert stage["x-overflow"] == "reject-publish" and stage["x-max-length"] == 50
    assert (
        bus.queue_arguments("dlq") == bus.queue_arguments("terminal") == {"x-queue-type": "quorum"}
    )
    assert bus.queue_name("nlp") == "p.nlp" and bus.topic_of("p.nlp") == "nlp"
    assert "secret" not in bus.safe_url and bus.durable is True


def _ingest(source: str) -> CloudEvent:
    return new_event(INGEST_RECEIVED, {"artifact": {"name": "a", "source": source}, "route": []})


def _record(
    event: CloudEvent, kind: str, status: str, voxel_id: str | None = None
) -> OutcomeRecord:
    return OutcomeRecord(
        id=event.id,
        correlation_id=event.correlationid,
        artifact=artifact_key(event),
        kind=kind,
        status=status,
        stage=None,
        reason=None,
        voxel_id=voxel_id,
        event_type=event.type,
        created_unix=0.0,
        replay_event_id=None,
        resolved_by=None,
        event=event,
    )


def test_final_outcome_per_artifact() -> None:
    a = _ingest("file:///x/a.txt")
    failed = dead_letter("package", DLQ_VOXEL, ValueError("boom"), original=a)
    first = a.derive(VOXEL_CREATED, {**a.data, "voxel": {"id": "v", "children": 2}})
    again = a.derive(VOXEL_CREATED, {**a.data, "voxel": {"id": "v", "children": 2}})
    records = [
        _record(failed, "dlq", "open"),
        _record(first, "voxel", "ok", "v"),
        _record(again, "voxel", "ok", "v"),
    ]
    final = final_outcomes(records)
    assert len(final) == 1
    (chosen,) = final.values()
    assert chosen.kind == "voxel" and chosen.id == first.id  # the voxel wins, once
    assert expected(final.values()) == 3  # the archive's two members are still to come
    b = _ingest("file:///x/b.txt")
    b_failed = dead_letter("classify", "system.dlq.classify_failed", ValueError("x"), original=b)
    assert [r.kind for r in final_outcomes([_record(b_failed, "dlq", "open")]).values()] == ["dlq"]
    assert final_outcomes([_record(b_failed, "dlq", "resolved")]) == {}
    assert final_outcomes([_record(b_failed, "dlq", "replayed")]) == {}  # its replay is pending
    # a dismissed record still says how the artifact ended (an operator closed it)
    (closed,) = final_outcomes([_record(b_failed, "dlq", "dismissed")]).values()
    assert closed.status == "dismissed"

    # settled: an archive waits for its members; a duplicate voxel record counts once
    assert settled(records) == {}
    members = [
        a.derive(VOXEL_CREATED, {"artifact": {"source": f"file:///x/a.txt!/m{i}"}, "voxel": {}})
        for i in range(2)
    ]
    done = settled([*records, *(_record(m, "voxel", "ok", f"m{i}") for i, m in enumerate(members))])
    assert list(done) == [a.correlationid] and len(done[a.correlationid]) == 3


def test_stable_uuid7_sorts_by_time_and_repeats() -> None:
    one = stable_uuid7(1_700_000_000_000, "m1")
    assert one == stable_uuid7(1_700_000_000_000, "m1") != stable_uuid7(1_700_000_000_000, "m2")
    assert uuid.UUID(one).version == 7
    assert one < stable_uuid7(1_700_000_000_001, "m0") < new_event("t", {}).id
