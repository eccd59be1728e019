"""Reprocess over the broker is at-least-once, and recording is idempotent (SQLite and
PostgreSQL, no broker needed: the publisher and the workers' collector are driven directly).

``--resume`` publishes the items still ``pending``; an item becomes ``done`` only in the
transaction that commits its result version, so a resume never republishes an item whose
result is committed, and does republish one that was published but not yet recorded. Every copy
of such an item the stage then runs -- one after the other, or at once on two collectors -- is
recorded once: one version per run and voxel, the item ``done``, the search row current."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from thunderline.config import Settings
from thunderline.errors import BackendError
from thunderline.events import CloudEvent
from thunderline.outcomes import OutcomeStore
from thunderline.search.lifecycle import check
from thunderline.sources.reprocess import Reprocessor, RunInfo
from thunderline.sources.reprocess_bus import ReprocessOutcomes, _publish_pending, mark_of
from thunderline.sources.runner import sync_once
from thunderline.sources.scan import parse_source
from thunderline.voxel.store import VoxelStore
from thunderline.voxel.tables import voxel_results

REPO = Path(__file__).resolve().parents[3]
OLD = 1_700_000_000.0


class _Bus:
    """What ``_publish_pending`` publishes: (topic, event) pairs."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, CloudEvent]] = []

    async def publish(self, topic: str, payload: bytes) -> None:
        self.sent.append((topic, CloudEvent.from_json(payload)))


def _published(worker: Reprocessor, info: RunInfo) -> list[CloudEvent]:
    bus = _Bus()
    asyncio.run(_publish_pending(worker, bus, worker.info(info.id), None))
    assert {topic for topic, _ in bus.sent} <= {info.stage}
    return [event for _, event in bus.sent]


def _run_stage(worker: Reprocessor, stage_name: str, events: list[CloudEvent]) -> list[CloudEvent]:
    """What the workers' stage sends to ``terminal`` for each published copy (in order)."""

    async def go() -> list[Any]:
        stage = worker._stage(stage_name, None)
        await stage.setup()
        try:
            return await stage.handle_batch(events)
        finally:
            await stage.close()

    results = []
    for outcome in asyncio.run(go()):
        assert not isinstance(outcome, BaseException), outcome
        (made,) = [o for o in outcome if isinstance(o.data.get(stage_name), dict)]
        assert mark_of(made) is not None  # the mark rides on the result
        results.append(made)
    return results


def _record(collector: OutcomeStore, events: list[CloudEvent]) -> None:
    """As the collector does: a database error retries the whole batch."""
    for _ in range(20):
        try:
            collector.record_many(events)
            return
        except BackendError:
            continue
    raise AssertionError("still failing after 20 attempts")


def _made_by(store: VoxelStore, run_id: str) -> int:
    with store.engine.connect() as conn:
        count = conn.scalar(
            select(func.count()).select_from(voxel_results).where(voxel_results.c.run_id == run_id)
        )
    return int(count or 0)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_resumed_run_republishes_only_unrecorded_items_and_records_each_once(
    backend: str,
    tmp_path: Path,
    settings_on: Callable[..., Settings],
) -> None:
    settings = settings_on(backend, source_settle_s=0.5)  # code: extract + package
    inbox = tmp_path / "in"
    inbox.mkdir()
    for name, example in (("a.py", "colorsys.py"), ("b.sh", "zgrep.sh"), ("c.py", "colorsys.py")):
        data = (REPO / "examples" / example).read_bytes()
        (inbox / name).write_bytes(data + name.encode())  # three distinct payloads
    import os

    for path in inbox.iterdir():
        os.utime(path, (OLD, OLD))
    assert asyncio.run(sync_once(settings, parse_source(str(inbox)))).voxels == 3

    with (
        VoxelStore(settings) as store,
        ReprocessOutcomes(settings, store.objects) as one,
        ReprocessOutcomes(settings, store.objects) as two,
    ):
        worker = Reprocessor(settings, store)
        info = worker.info(worker.start("extract"))
        ids = sorted(store.iter_ids())

        # the interrupted run published every item; a worker recorded the first one only
        first = _published(worker, info)
        assert sorted(mark_of(e).voxel_id for e in first) == ids  # type: ignore[union-attr]
        done_first = _run_stage(worker, "extract", first[:1])
        _record(one, done_first)
        assert worker.info(info.id).counts == {"done": 1, "pending": 2}

        # --resume: the recorded item is not published again, the two unrecorded ones are
        again = _published(worker, info)
        assert sorted(mark_of(e).voxel_id for e in again) == ids[1:]  # type: ignore[union-attr]

        # every copy of those two is run (first publication and resume) and delivered to one
        # collector or the other, at the same time: each item is recorded once
        copies = _run_stage(worker, "extract", first[1:] + again)
        assert len({e.id for e in copies}) == 4
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def deliver(collector: OutcomeStore, events: list[CloudEvent]) -> None:
            try:
                start.wait()
                _record(collector, events)
            except BaseException as exc:  # reported by the assert below
                errors.append(exc)

        threads = [
            threading.Thread(target=deliver, args=(one, copies[:2])),
            threading.Thread(target=deliver, args=(two, copies[2:])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        # and a copy still queued when everything was done (the first item's second copy)
        _record(two, _run_stage(worker, "extract", first[:1]))

        assert worker.info(info.id).counts == {"done": 3}
        assert _made_by(store, info.id) == 3  # six copies, one version per voxel
        for voxel_id in ids:
            versions = worker.versions(voxel_id)["extract"]
            assert [(v.seq, v.run_id, v.current) for v in versions] == [
                (1, None, False),
                (2, info.id, True),
            ]
        assert check(store, ids) == []  # the search rows agree with the current versions
        assert _published(worker, info) == []  # nothing left for another resume
