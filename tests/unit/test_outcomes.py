"""The outcome store: what is not recorded (the contract, over SQLite and PostgreSQL, is in
tests/integration/contracts/test_outcome_store_contract.py)."""

from __future__ import annotations

from collections.abc import Callable

from thunderline.config import Settings
from thunderline.dlq.record import dead_letter
from thunderline.errors import ArtifactTooLargeError
from thunderline.events import DLQ_CLASSIFY, INGEST_RECEIVED, VOXEL_CREATED, CloudEvent, new_event
from thunderline.outcomes import OutcomeStore


def ingest(name: str) -> CloudEvent:
    return new_event(
        INGEST_RECEIVED,
        {"artifact": {"name": name, "path": f"/in/{name}", "source": f"file:///in/{name}"}},
    )


def dead(event: CloudEvent) -> CloudEvent:
    return dead_letter("classify", DLQ_CLASSIFY, ArtifactTooLargeError("big"), original=event)


def voxel(event: CloudEvent, voxel_id: str = "0" * 36) -> CloudEvent:
    return event.derive(VOXEL_CREATED, {**event.data, "voxel": {"id": voxel_id}})


def test_dlq_id_wildcards_are_refused_and_short_ids_resolve(
    make_settings: Callable[..., Settings],
) -> None:
    import pytest

    from thunderline.ids import IdReferenceError, short

    with OutcomeStore(make_settings()) as store:
        record = dead(ingest("only.txt"))
        store.record(record)
        assert store.dlq_get(record.id[:10]) is not None
        found = store.dlq_get(short(record.id).upper())
        assert found is not None and found.id == record.id
        assert store.dlq_get("abcdef") is None
        for pattern in ("%", "________", "%" + record.id[1:10], "_" * 10):
            with pytest.raises(IdReferenceError):
                store.dlq_get(pattern)


def test_other_events_are_not_recorded(make_settings: Callable[..., Settings]) -> None:
    with OutcomeStore(make_settings()) as store:
        store.record(ingest("x"))
        assert store.counts() == {}


#: Columns of ``outcomes`` added after 0002_outcomes.
NEWER_COLUMNS = {
    "once_key",
    "retryable",
    "group_key",
    "dismissed_unix",
    "dismissed_by",
    "dismiss_note",
}


def test_a_database_at_0002_with_duplicate_rows_migrates(
    make_settings: Callable[..., Settings],
) -> None:
    """Rows written before ``0003_outcome_once`` (duplicates included) stay; new ones are keyed."""
    from alembic import command
    from sqlalchemy import insert

    from thunderline.outcomes import _row  # the row an older version wrote, minus the key
    from thunderline.voxel.db import _alembic_config, head_revision, make_engine
    from thunderline.voxel.tables import outcomes

    settings = make_settings()
    engine = make_engine(settings.resolved_database_url)
    a = ingest("old.txt")
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0002_outcomes")
            for event in (voxel(a), voxel(a)):
                row = {k: v for k, v in _row(event).items() if k not in NEWER_COLUMNS}
                conn.execute(insert(outcomes).values(**row))
    finally:
        engine.dispose()
    with OutcomeStore(settings) as store:
        assert store.revision == head_revision()  # through 0003_outcome_once to the head
        assert len(store.by_correlation(a.correlationid)) == 2
        b = ingest("new.txt")
        store.record_many([voxel(b), voxel(b)])
        assert len(store.by_correlation(b.correlationid)) == 1
