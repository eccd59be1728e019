"""DLQ tools of the scale-out mode: records from the outcome store, replays over RabbitMQ.

A replay re-publishes the original event of a DLQ record to the queue of the stage that
failed, with the same correlation id (the same artifact) and a new causation link: the replay
event's ``causationid`` is the DLQ record's id. The record becomes ``replayed``; when the
artifact then ends as a voxel the collector marks it ``resolved`` and it leaves the DLQ list;
if it fails again the new failure reopens it.
"""

from __future__ import annotations

from typing import Any

from thunderline.config import Settings
from thunderline.errors import ConfigError
from thunderline.events import CloudEvent, new_id
from thunderline.flow.engine import topic_for
from thunderline.runtime import open_bus
from thunderline.worker.outcomes import Outcome, OutcomeStore

REPLAY_SOURCE = "urn:thunderline:replay"


def replay_event(record: CloudEvent) -> CloudEvent:
    """The original event of ``record`` again: same correlation, caused by the DLQ record."""
    original = record.data.get("original")
    if not isinstance(original, dict):
        raise ConfigError(f"DLQ record {record.id} has no original event to replay")
    event = CloudEvent.from_dict(original)
    return CloudEvent(
        id=new_id(),
        type=event.type,
        source=REPLAY_SOURCE,
        data=event.data,
        correlationid=event.correlationid,
        causationid=record.id,
    )


def list_records(settings: Settings, limit: int, status: str = "open") -> list[Outcome]:
    store = OutcomeStore(settings)
    try:
        return store.dlq(status=status, limit=limit)
    finally:
        store.close()


def get_record(settings: Settings, record_id: str) -> Outcome | None:
    store = OutcomeStore(settings)
    try:
        return store.dlq_get(record_id)
    finally:
        store.close()


async def replay(settings: Settings, ids: list[str] | None) -> list[dict[str, Any]]:
    """Replay the given open DLQ records (all open ones when ``ids`` is None)."""
    store = OutcomeStore(settings)
    bus = open_bus(settings)
    done: list[dict[str, Any]] = []
    try:
        if ids is None:
            records = [o.event for o in store.dlq(status="open", limit=1_000_000)]
        else:
            records = []
            for record_id in ids:
                found = store.dlq_get(record_id)
                if found is None:
                    raise ConfigError(f"no DLQ record {record_id}")
                if found.status != "open":
                    raise ConfigError(f"DLQ record {record_id} is {found.status}, not open")
                records.append(found.event)
        for record in records:
            event = replay_event(record)
            topic = topic_for(event)
            await bus.publish(topic, event.to_bytes())
            store.mark_replayed(record.id)
            done.append({"dlq_id": record.id, "replay_id": event.id, "topic": topic})
    finally:
        await bus.close()
        store.close()
    return done
