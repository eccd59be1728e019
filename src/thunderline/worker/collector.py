"""The collector: records every terminal and DLQ event of the shared bus in the database.

It runs in a worker with ``--stages collect`` (any number of them: recording is idempotent).
A batch is acknowledged only after it is recorded; while the database is unreachable it
keeps the batch and retries with backoff, so no outcome is lost when PostgreSQL goes away.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from typing import Protocol

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC, Delivery, EventBus
from thunderline.config import RetryPolicy
from thunderline.errors import MalformedEventError, ThunderlineError
from thunderline.events import CloudEvent
from thunderline.obs import metrics
from thunderline.obs.logs import correlation_id

_log = logging.getLogger("thunderline.worker.collector")

COLLECT_STAGE = "collect"
_BATCH = 256
#: Recording while the database is away: 0.1 s doubling to 5 s, until it is back.
RECORD_RETRY = RetryPolicy(backoff_s=0.1, backoff_max_s=5.0)


class OutcomeRecorder(Protocol):
    def record_many(self, events: Sequence[CloudEvent]) -> None: ...


class Collector:
    """Pull ``terminal`` and ``dlq``, record, then ack."""

    def __init__(
        self, bus: EventBus, recorder: OutcomeRecorder, *, retry: RetryPolicy = RECORD_RETRY
    ) -> None:
        self.bus = bus
        self.recorder = recorder
        self.retry = retry
        self.recorded = 0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            got = False
            for topic in (DLQ_TOPIC, TERMINAL_TOPIC):
                deliveries = await self.bus.pull(topic, COLLECT_STAGE, _BATCH, 0 if got else 0.1)
                if deliveries:
                    got = True
                    await self._settle(topic, deliveries)

    async def _settle(self, topic: str, deliveries: list[Delivery]) -> None:
        events: list[CloudEvent] = []
        for delivery in deliveries:
            try:
                events.append(CloudEvent.from_json(delivery.payload))
            except MalformedEventError as exc:
                # nothing to attribute it to; keep it visible in the log and the metrics
                metrics.DLQ_TOTAL.labels(topic, "malformed_event").inc()
                _log.error("unreadable message on %s dropped from outcomes: %s", topic, exc)
        for attempt in itertools.count(1):
            try:
                await asyncio.to_thread(self.recorder.record_many, events)
                break
            except ThunderlineError as exc:
                _log.warning("recording %d outcomes failed (%s); retrying", len(events), exc)
                await asyncio.sleep(self.retry.delay(attempt))
        self.recorded += len(events)
        for event in events:
            token = correlation_id.set(event.correlationid)
            _log.info("outcome %s recorded (%s)", event.type, event.id)
            correlation_id.reset(token)
        for delivery in deliveries:
            await self.bus.ack(delivery)
