"""The outcome store contract, run over every database (``VOXEL_BACKENDS``): recording, DLQ
status, claims (also racing), resolution by a later voxel, paging, odd names."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from tests.unit.test_outcomes import dead, ingest, voxel

from thunderline.config import Settings
from thunderline.outcomes import OutcomeStore
from thunderline.stores import OutcomeStorage


@pytest.fixture
def store(voxel_settings: Settings) -> Iterator[OutcomeStorage]:
    with OutcomeStore(voxel_settings) as opened:
        assert isinstance(opened, OutcomeStorage)
        yield opened


def test_the_outcome_store_contract(store: OutcomeStorage) -> None:
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


def test_one_row_per_artifact_and_kind(store: OutcomeStorage) -> None:
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


def test_dlq_triage_groups_dismisses_and_purges(store: OutcomeStorage) -> None:
    """Repeated failures of one file are one group; the retryable flag comes from the error
    type; dismissing closes open records only; purge deletes closed records past the cut-off,
    never open ones."""
    import time

    import pytest

    from thunderline.dlq.record import dead_letter
    from thunderline.errors import BackendError
    from thunderline.events import DLQ_CLASSIFY
    from thunderline.ids import AmbiguousIdError, short
    from thunderline.outcomes import group_key

    runs = [ingest("broken.pdf") for _ in range(3)]  # the same file ingested three times
    broken = [dead(run) for run in runs]
    flaky_run = ingest("flaky.txt")
    flaky = dead_letter(
        "classify", DLQ_CLASSIFY, BackendError("db away"), original=flaky_run, attempts=3
    )
    store.record_many([*broken, flaky])

    groups, total = store.dlq_groups()
    assert total == 2
    by_reason = {g.reason: g for g in groups}
    pdf = by_reason["too_large"]
    assert pdf.count == 3 and pdf.latest.id == max(r.id for r in broken)
    assert pdf.first_unix <= pdf.last_unix and pdf.stage == "classify"
    assert pdf.key == group_key("classify", "too_large", "file:///in/broken.pdf")
    assert pdf.retryable is False and by_reason["backend"].retryable is True
    assert groups[0].reason == "backend"  # the most recently failed group first
    assert store.resolve_group(pdf.id) == pdf.key
    assert store.resolve_group(pdf.key) == pdf.key
    absent = next(p for p in ("0000", "ffff") if not any(g.key.startswith(p) for g in groups))
    assert store.resolve_group(absent) is None
    assert sorted(r.id for r in store.dlq(group=pdf.key)) == sorted(r.id for r in broken)
    # short ids resolve; a fragment both ends share is ambiguous, never guessed
    got = store.dlq_get(short(flaky.id))
    assert got is not None and got.id == flaky.id and got.retryable is True
    with pytest.raises(AmbiguousIdError):
        store.dlq_get(broken[0].id[:8])  # the time prefix every record of this minute shares

    # dismiss: open -> dismissed with who/when/why; a record not open is left as it is
    assert store.mark_replayed(broken[0].id, "replay-x")
    done = store.dismiss([r.id for r in broken], by="ops@example", note="corrupt upstream")
    assert sorted(done) == sorted(r.id for r in broken[1:])
    dismissed = store.dlq_get(broken[1].id)
    assert dismissed is not None and dismissed.status == "dismissed"
    assert dismissed.dismissed_by == "ops@example" and dismissed.dismiss_note == "corrupt upstream"
    assert dismissed.dismissed_unix is not None
    assert [r.id for r in store.dlq()] == [flaky.id]
    assert store.counts()["open"] == 1 and store.counts()["dismissed"] == 2
    assert store.dismiss([flaky.id], by="x", note="y") == [flaky.id]
    assert store.dismiss([flaky.id], by="x", note="again") == []  # once only
    # a later failure of a dismissed artifact (same ingest) is a new open record
    again = dead(runs[1])
    store.record(again)
    assert [r.id for r in store.dlq()] == [again.id]
    assert store.dlq_groups("dismissed")[1] == 2

    # purge: closed records created before the cut-off; open ones stay whatever their age
    assert store.purge(time.time() - 3600) == {}
    future = time.time() + 1
    assert store.purge(future, dry_run=True) == {"dismissed": 3, "replayed": 1}
    assert store.dlq_get(flaky.id) is not None  # a dry run deletes nothing
    assert store.purge(future) == {"dismissed": 3, "replayed": 1}
    assert [r.id for r in store.dlq(None)] == [again.id]
    assert store.purge(future) == {}


def test_dlq_rows_written_before_0006_get_their_group_and_a_derived_retryable(
    voxel_settings: Settings,
) -> None:
    """A DLQ row of an older version (no ``retryable`` in the record, no group key) is grouped
    by the migration, and its retryable flag comes from its error type's name."""
    from alembic import command
    from sqlalchemy import insert
    from tests.unit.test_outcomes import NEWER_COLUMNS

    from thunderline.dlq.record import dead_letter
    from thunderline.errors import StageTimeoutError
    from thunderline.events import DLQ_CLASSIFY, CloudEvent
    from thunderline.outcomes import _row, group_key
    from thunderline.voxel.db import _alembic_config, make_engine
    from thunderline.voxel.tables import outcomes

    settings = voxel_settings
    engine = make_engine(settings.resolved_database_url)
    a, b = ingest("old.txt"), ingest("slow.txt")

    def older(event: CloudEvent) -> CloudEvent:  # the record as an older builder wrote it
        data = {k: v for k, v in event.data.items() if k != "retryable"}
        return event.model_copy(update={"data": data})

    too_big = older(dead(a))
    slow = older(dead_letter("nlp", DLQ_CLASSIFY, StageTimeoutError("slow"), original=b))
    unknown = older(dead(ingest("odd.txt")))
    unknown.data["error"]["type"] = "SomeLibraryError"
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0005_sources")
            for event in (too_big, slow, unknown):
                row = {
                    k: v for k, v in _row(event).items() if k not in NEWER_COLUMNS - {"once_key"}
                }
                conn.execute(insert(outcomes).values(**row))
    finally:
        engine.dispose()
    with OutcomeStore(settings) as store:
        got = {r.id: r for r in store.dlq()}
        assert got[too_big.id].retryable is False and got[too_big.id].permanence == "permanent"
        assert got[slow.id].retryable is True
        assert got[unknown.id].retryable is None and got[unknown.id].permanence == "unknown"
        assert got[too_big.id].group_key == group_key("classify", "too_large", "file:///in/old.txt")
        groups, total = store.dlq_groups()
        assert total == 3 and {g.count for g in groups} == {1}
