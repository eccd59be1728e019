"""The live view of a submit-and-read API (``TL_BUS_URL=amqp://…``): outcomes, not stages.

Workers run the stages in other processes, so this process never sees their intermediate
events. What it can see is the outcome store the collector fills: the :class:`OutcomeFollower`
polls it for the correlation ids this server submitted (uploads and replays) and hands each new
record's event (``voxel.created`` or a ``system.dlq.*`` record) to the :class:`EventHub` once,
as the embedded mode hands it every event. A correlation id is followed until each of its
artifacts has its final outcome (:mod:`thunderline.worker.settle`), or for ``FOLLOW_MAX_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict

from thunderline.api.live import EventHub
from thunderline.outcomes import OutcomeStore
from thunderline.worker.settle import settled

_log = logging.getLogger("thunderline.api")

#: Stop following an ingest that has no final outcome after this long (its status is still
#: answered from the outcome store by ``GET /v1/ingest/{id}``).
FOLLOW_MAX_S = 3600.0
POLL_S = 0.5
#: Record ids already shown are remembered for this many ingests (a replay then shows only
#: its new outcome, not the old DLQ record again).
SEEN_MAX = 10_000


class OutcomeFollower:
    """Polls the outcome store for followed correlation ids; publishes new records once."""

    def __init__(self, outcomes: OutcomeStore, hub: EventHub, *, poll_s: float = POLL_S) -> None:
        self.outcomes = outcomes
        self.hub = hub
        self.poll_s = poll_s
        self._until: dict[str, float] = {}
        self._seen: OrderedDict[str, set[str]] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    def follow(self, correlation_id: str) -> None:
        """Follow a correlation id's events for up to ``FOLLOW_MAX_S`` seconds."""
        self._until[correlation_id] = time.monotonic() + FOLLOW_MAX_S
        self._seen.setdefault(correlation_id, set())
        self._seen.move_to_end(correlation_id)
        while len(self._seen) > SEEN_MAX:
            oldest = next(iter(self._seen))
            if oldest in self._until:
                break
            self._seen.popitem(last=False)

    @property
    def following(self) -> int:
        """How many correlation ids are followed now."""
        return len(self._until)

    def start(self) -> None:
        """Start following in a background task."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tl-api-follow")

    async def stop(self) -> None:
        """Stop the background task and wait for it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.poll()
            except Exception as exc:  # a database outage: keep following, say so
                _log.warning("following outcomes failed (%s); retrying", exc)

    async def poll(self) -> None:
        """One round: publish the records not seen yet; drop settled or expired ids."""
        ids = sorted(self._until)
        if not ids:
            return
        records = await asyncio.to_thread(self.outcomes.by_correlations, ids)
        for record in sorted(records, key=lambda r: r.id):
            seen = self._seen.get(record.correlation_id)
            if seen is None or record.correlation_id not in self._until:
                continue
            if record.id not in seen:
                seen.add(record.id)
                self.hub.publish(record.event)
        done = settled(records)
        now = time.monotonic()
        for cid in ids:
            if cid in done or now > self._until[cid]:
                self._until.pop(cid, None)
