"""The outcome store on SQLite (tests/integration/voxel/test_outcomes_pg.py runs the same
checks on PostgreSQL): recording, DLQ status, claims, resolution, paging, odd names."""

from __future__ import annotations

import threading
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


def check_outcome_store(store: OutcomeStore) -> None:
    """The behaviour every backend must have (called by the SQLite and PostgreSQL tests)."""
    a, b, c = ingest("a.txt"), ingest("b.txt"), ingest("bad \udcff\x1b[31m.txt")
    ok_a, dlq_b, dlq_c = voxel(a), dead(b), dead(c)
    store.record_many([ok_a, dlq_b, dlq_c])
    store.record_many([dlq_b])  # redelivered: recorded once
    assert [r.id for r in store.by_correlation(a.correlationid)] == [ok_a.id]
    assert store.by_correlation(a.correlationid)[0].voxel_id == "0" * 36
    open_ = store.dlq()
    assert [r.id for r in open_] == sorted([dlq_b.id, dlq_c.id])
    record_c = store.dlq_get(dlq_c.id)
    assert record_c is not None and record_c.reason == "too_large" and record_c.stage == "classify"
    # the name round-trips exactly through the stored event
    assert record_c.event.data["original"]["data"]["artifact"]["name"] == "bad \udcff\x1b[31m.txt"
    assert record_c.event == dlq_c
    # a claim succeeds once, also when two replays race for it
    replay_b = b.derive(b.type, b.data, source="urn:thunderline:replay")
    wins: list[bool] = []
    threads = [
        threading.Thread(target=lambda: wins.append(store.mark_replayed(dlq_b.id, replay_b.id)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False, False, False, True]
    assert store.mark_replayed(ok_a.id, "x") is False  # a voxel is not a DLQ record
    assert [r.id for r in store.dlq()] == [dlq_c.id]
    replayed = store.dlq("replayed")
    assert [r.id for r in replayed] == [dlq_b.id]
    assert replayed[0].replay_event_id == replay_b.id
    # the artifact ends as a voxel: resolved; an unrelated voxel resolves nothing
    store.record(voxel(ingest("b.txt")))
    assert store.dlq_get(dlq_b.id).status == "replayed"  # type: ignore[union-attr]
    done = voxel(replay_b)
    store.record(done)
    resolved = store.dlq_get(dlq_b.id)
    assert (
        resolved is not None and resolved.status == "resolved" and resolved.resolved_by == done.id
    )
    assert {r.id for r in store.dlq(None)} == {dlq_b.id, dlq_c.id}
    # paging by cursor
    first = store.dlq(None, limit=1)
    second = store.dlq(None, limit=1, cursor=first[0].id)
    assert [first[0].id, second[0].id] == sorted([dlq_b.id, dlq_c.id])
    # reopen undoes a claim whose replay could not be sent
    assert store.mark_replayed(dlq_c.id, "r")
    store.reopen(dlq_c.id)
    assert store.dlq_get(dlq_c.id).status == "open"  # type: ignore[union-attr]
    assert store.counts() == {"ok": 3, "open": 1, "resolved": 1}
    # prefixes
    assert store.dlq_get(dlq_c.id[:20]) is not None


def check_once_per_artifact(store: OutcomeStore) -> None:
    """A message processed twice (a broker cut) ends with two terminal events of different
    ids for one artifact: recorded once per (artifact, kind); a DLQ record once while open."""
    a, b = ingest("twice.txt"), ingest("fails.txt")
    first, again = voxel(a), voxel(a)  # the second run of the same message: a new event id
    assert first.id != again.id
    store.record_many([first])
    store.record_many([again, voxel(a)])
    assert [r.id for r in store.by_correlation(a.correlationid)] == [first.id]
    dlq_1, dlq_2 = dead(b), dead(b)
    store.record_many([dlq_1, dlq_2])  # in one batch too
    assert [r.id for r in store.by_correlation(b.correlationid)] == [dlq_1.id]
    # a replay that fails again adds its own open record (the replayed one gave its key up)
    assert store.mark_replayed(dlq_1.id, "replay-1")
    dlq_3 = dead(b)
    store.record(dlq_3)
    records = store.by_correlation(b.correlationid)
    assert [(r.id, r.status) for r in records] == [(dlq_1.id, "replayed"), (dlq_3.id, "open")]
    # the same file in another ingest is another artifact
    other = ingest("twice.txt")
    store.record(voxel(other))
    assert len(store.by_correlation(other.correlationid)) == 1


def test_dlq_id_prefix_wildcards_match_nothing(make_settings: Callable[..., Settings]) -> None:
    with OutcomeStore(make_settings()) as store:
        record = dead(ingest("only.txt"))
        store.record(record)
        assert store.dlq_get(record.id[:10]) is not None
        for pattern in ("%", "________", "%" + record.id[1:10], "_" * 10):
            assert store.dlq_get(pattern) is None, pattern


def test_outcome_store_on_sqlite(make_settings: Callable[..., Settings]) -> None:
    with OutcomeStore(make_settings()) as store:
        check_outcome_store(store)


def test_one_row_per_artifact_and_kind_on_sqlite(make_settings: Callable[..., Settings]) -> None:
    with OutcomeStore(make_settings()) as store:
        check_once_per_artifact(store)


def test_other_events_are_not_recorded(make_settings: Callable[..., Settings]) -> None:
    with OutcomeStore(make_settings()) as store:
        store.record(ingest("x"))
        assert store.counts() == {}


def test_a_database_at_0002_with_duplicate_rows_migrates(
    make_settings: Callable[..., Settings],
) -> None:
    """Rows written before ``0003_outcome_once`` (duplicates included) stay; new ones are keyed."""
    from alembic import command
    from sqlalchemy import insert

    from thunderline.outcomes import _row  # the row an older version wrote, minus the key
    from thunderline.voxel.db import _alembic_config, make_engine
    from thunderline.voxel.tables import outcomes

    settings = make_settings()
    engine = make_engine(settings.resolved_database_url)
    a = ingest("old.txt")
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0002_outcomes")
            for event in (voxel(a), voxel(a)):
                row = {k: v for k, v in _row(event).items() if k != "once_key"}
                conn.execute(insert(outcomes).values(**row))
    finally:
        engine.dispose()
    with OutcomeStore(settings) as store:
        from thunderline.voxel.db import head_revision

        assert store.revision == head_revision()  # through 0003_outcome_once to the head
        assert len(store.by_correlation(a.correlationid)) == 2
        b = ingest("new.txt")
        store.record_many([voxel(b), voxel(b)])
        assert len(store.by_correlation(b.correlationid)) == 1
