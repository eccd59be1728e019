"""The outcome store: what is not recorded (the contract, over SQLite and PostgreSQL, is in
tests/integration/contracts/test_outcome_store_contract.py)."""

from __future__ import annotations

from collections.abc import Callable

from thunderline.config import Settings
from thunderline.errors import ArtifactTooLargeError
from thunderline.events import DLQ_CLASSIFY, INGEST_RECEIVED, VOXEL_CREATED, CloudEvent, new_event
from thunderline.flow.engine import dlq_event
from thunderline.outcomes import OutcomeStore


def ingest(name: str) -> CloudEvent:
    return new_event(
        INGEST_RECEIVED,
        {"artifact": {"name": name, "path": f"/in/{name}", "source": f"file:///in/{name}"}},
    )


def dead(event: CloudEvent) -> CloudEvent:
    return dlq_event("classify", DLQ_CLASSIFY, ArtifactTooLargeError("big"), original=event)


def voxel(event: CloudEvent, voxel_id: str = "0" * 36) -> CloudEvent:
    return event.derive(VOXEL_CREATED, {**event.data, "voxel": {"id": voxel_id}})


def test_other_events_are_not_recorded(make_settings: Callable[..., Settings]) -> None:
    with OutcomeStore(make_settings()) as store:
        store.record(ingest("x"))
        assert store.counts() == {}
