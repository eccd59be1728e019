"""Scale-out parts that need no service: stage lists, queue arguments, keys, replays."""

from __future__ import annotations

import pytest

from thunderline.bus.rabbitmq import RabbitMQBus
from thunderline.errors import ConfigError
from thunderline.events import DLQ_VOXEL, INGEST_RECEIVED, VOXEL_CREATED, new_event
from thunderline.flow.engine import dlq_event
from thunderline.worker.dlq import replay_event
from thunderline.worker.outcomes import Outcome, artifact_key
from thunderline.worker.runner import parse_stages
from thunderline.worker.submit import _expected


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


def _ingest(source: str):  # type: ignore[no-untyped-def]
    return new_event(INGEST_RECEIVED, {"artifact": {"name": "a", "source": source}, "route": []})


def test_artifact_key_is_per_submission_and_source() -> None:
    a = _ingest("file:///x/a.txt")
    voxel = a.derive(VOXEL_CREATED, {**a.data, "voxel": {"id": "v", "children": 2}})
    failed = dlq_event("package", DLQ_VOXEL, ValueError("boom"), original=a)
    assert artifact_key(voxel) == artifact_key(failed)  # the same artifact, either way
    member = a.derive(INGEST_RECEIVED, {"artifact": {"source": "file:///x/a.zip!/m"}})
    assert artifact_key(member) != artifact_key(voxel)
    assert artifact_key(_ingest("file:///x/a.txt")) != artifact_key(a)  # another submission
    assert _expected([Outcome("voxel", "ok", voxel)]) == 3


def test_replay_is_caused_by_the_dlq_record() -> None:
    original = _ingest("file:///x/a.txt")
    record = dlq_event("classify", "system.dlq.classify_failed", ValueError("x"), original=original)
    again = replay_event(record)
    assert again.type == original.type and again.data == original.data
    assert again.correlationid == original.correlationid
    assert again.causationid == record.id and again.id != original.id
    with pytest.raises(ConfigError):
        replay_event(new_event("system.dlq.classify_failed", {"original": None}))
