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


def test_outcome_store_on_sqlite(make_settings: Callable[..., Settings]) -> None:
    with OutcomeStore(make_settings()) as store:
        check_outcome_store(store)


def test_other_events_are_not_recorded(make_settings: Callable[..., Settings]) -> None:
    with OutcomeStore(make_settings()) as store:
        store.record(ingest("x"))
        assert store.counts() == {}
