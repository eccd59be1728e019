"""The collector: every artifact's end recorded, counted, reported, then acknowledged.

An artifact ends on the ``terminal`` or the ``dlq`` topic. The pipeline runs one in-process; a
worker with ``--stages collect`` runs the same one over the broker (any number of them: recording
is idempotent).

Per batch: record in the outcome store (retried with backoff while the database is away, so
no outcome is lost), count each end in ``thunderline_ingest_completed_total`` (the denominator
of ``ThunderlineDLQRateHigh``) and hand it to ``on_event``, then ack and tell ``on_settled``.
A message that is not an event is logged, counted as ``malformed_event`` and acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC, Delivery, EventBus
from thunderline.config import RetryPolicy
from thunderline.errors import MalformedEventError, ThunderlineError
from thunderline.events import CloudEvent
from thunderline.obs import metrics
from thunderline.obs.logs import correlation_id

_log = logging.getLogger("thunderline.flow.collector")

#: The consumer name of the collector (and the worker's ``--stages`` name for it).
COLLECT_STAGE = "collect"
_BATCH = 256
#: The wait for terminal events when the last round found nothing (an event wakes it at once).
#: The DLQ topic is only looked at between those waits, so a dead letter on an idle pipeline
#: is recorded within this time; 0.025 s on both topics woke an idle collector 40 times a second.
_POLL_S = 0.25
#: Recording while the database is away: 0.1 s doubling to 5 s, until it is back.
RECORD_RETRY = RetryPolicy(backoff_s=0.1, backoff_max_s=5.0)


class OutcomeRecorder(Protocol):
    """Where outcomes are recorded (:class:`~thunderline.outcomes.OutcomeStore`)."""

    def record_many(self, events: Sequence[CloudEvent]) -> None:
        """Record the end of each event's artifact (idempotent: a replayed event is kept once)."""


class Collector:
    """Pull ``dlq`` and ``terminal``; record, count, report, then ack (see the module)."""

    def __init__(
        self,
        bus: EventBus,
        recorder: OutcomeRecorder | None,
        *,
        on_event: Callable[[CloudEvent], object] | None = None,
        on_settled: Callable[[int], object] | None = None,
        retry: RetryPolicy = RECORD_RETRY,
        decode: Callable[[bytes], CloudEvent] | None = None,
    ) -> None:
        self.bus = bus
        self.recorder = recorder
        self.on_event = on_event
        self.on_settled = on_settled
        self.retry = retry
        #: Bytes -> event (the pipeline's :class:`~thunderline.flow.engine.Handoff` in-process;
        #: it raises MalformedEventError like ``CloudEvent.from_json``, the default).
        self.decode = decode or CloudEvent.from_json
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand, then return from :meth:`run`."""
        self._stopping.set()

    async def run(self) -> None:
        """Pull ``dlq`` then ``terminal`` batches and settle them until :meth:`stop` is called."""
        while not self._stopping.is_set():
            got = False
            for topic in (DLQ_TOPIC, TERMINAL_TOPIC):
                wait = _POLL_S if topic == TERMINAL_TOPIC and not got else 0
                deliveries = await self.bus.pull(topic, COLLECT_STAGE, _BATCH, wait)
                if deliveries:
                    got = True
                    await self.settle(topic, deliveries)

    async def settle(self, topic: str, deliveries: list[Delivery]) -> None:
        """Record, count and report one batch of ``topic``, then acknowledge it."""
        events: list[CloudEvent] = []
        for delivery in deliveries:
            try:
                events.append(self.decode(delivery.payload))
            except MalformedEventError as exc:
                metrics.DLQ_TOTAL.labels(topic, "malformed_event").inc()
                _log.error("unreadable message on %s dropped from outcomes: %s", topic, exc)
        await self._record(events)
        for event in events:
            metrics.record_terminal(event)
            token = correlation_id.set(event.correlationid)
            _log.info("outcome %s recorded (%s)", event.type, event.id)
            correlation_id.reset(token)
            if self.on_event is not None:
                try:
                    self.on_event(event)
                except Exception:
                    _log.exception("outcome callback failed")
        for delivery in deliveries:
            await self.bus.ack(delivery)
        if self.on_settled is not None:
            self.on_settled(len(deliveries))

    async def _record(self, events: list[CloudEvent]) -> None:
        if self.recorder is None or not events:
            return
        for attempt in itertools.count(1):
            try:
                await asyncio.to_thread(self.recorder.record_many, events)
                break
            except ThunderlineError as exc:
                _log.warning("recording %d outcomes failed (%s); retrying", len(events), exc)
                await asyncio.sleep(self.retry.delay(attempt))
