"""The submit-and-read live view: each outcome of a followed ingest reaches the hub once, and an
ingest stops being followed when each of its artifacts has its final outcome."""

from __future__ import annotations

from collections.abc import Callable

from tests.unit.test_outcomes import dead, ingest, voxel

from thunderline.api.follow import OutcomeFollower
from thunderline.api.live import EventHub
from thunderline.config import Settings
from thunderline.outcomes import OutcomeStore


async def test_follower_publishes_each_outcome_once(
    make_settings: Callable[..., Settings],
) -> None:
    with OutcomeStore(make_settings()) as store:
        hub = EventHub()
        sub = hub.subscribe()
        follower = OutcomeFollower(store, hub)
        a, b, other = ingest("a.txt"), ingest("b.txt"), ingest("not-mine.txt")
        follower.follow(a.correlationid)
        follower.follow(b.correlationid)
        await follower.poll()
        assert sub.queue.empty() and follower.following == 2

        ok_a, dlq_b = voxel(a), dead(b)
        store.record_many([ok_a, dlq_b, voxel(other)])
        store.record_many([ok_a])  # redelivered: recorded once, shown once
        await follower.poll()
        await follower.poll()
        shown = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
        assert sorted(e.id for e in shown if e is not None) == sorted([ok_a.id, dlq_b.id])
        assert follower.following == 0  # both settled: a voxel, an open DLQ record

        # a replay is followed again: its old record is "replayed", so it is pending until
        # the new outcome comes
        replay = b.derive(b.type, b.data, source="urn:thunderline:replay")
        assert store.mark_replayed(dlq_b.id, replay.id)
        follower.follow(b.correlationid)
        await follower.poll()
        assert follower.following == 1
        ok_b = voxel(replay, "1" * 36)
        store.record_many([ok_b])
        await follower.poll()
        shown = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
        assert [e.id for e in shown if e is not None] == [ok_b.id]  # the old record not again
        assert follower.following == 0
