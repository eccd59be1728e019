"""A route nobody serves never waits silently (issue 23).

On a broker, a stage queue with messages and no consumer holds work that no worker will take
until one starts for that stage (``TL_ROUTES`` names a stage no ``thunderline worker
--stages`` serves, or those workers are down). Three parts say so:

* **On publish** (:class:`ServedCheck`, used by the RabbitMQ bus for every publisher: the
  submitters of ``ingest``/``serve``/``sync`` and the workers' engines): a publish to a queue
  without a consumer logs a WARNING naming the stage and the queue at once (then at most once a
  minute per queue while it stays unserved) and counts
  ``thunderline_bus_unserved_publishes_total{topic}``. The consumer count is the broker's
  (a passive declare), asked again at most every :data:`SERVED_CHECK_S` per queue.
* **While a submitter waits** (:class:`UnservedWatch`, in
  :func:`thunderline.worker.submit.wait_outcomes`): every stage queue is looked at every
  :data:`WATCH_PROBE_S`; an unserved one is reported at once ("waiting for stage nlp: no worker
  serves it") and every :data:`REPORT_EVERY_S` after; ``TL_BUS_UNSERVED_TIMEOUT_S`` bounds the
  wait with :class:`UnservedStageError`.
* **For Prometheus** (:class:`QueueSampler`, run by every worker): each queue's messages and
  consumers as gauges (``thunderline_bus_queue_messages`` / ``_consumers{topic}``), which
  the ``ThunderlineStageUnserved`` alert reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC, EventBus, QueueStats
from thunderline.config import ROUTE_STAGES
from thunderline.errors import UnservedStageError
from thunderline.obs import metrics

_log = logging.getLogger("thunderline.bus.served")

#: The queues watched for a missing worker: every stage's (classify first), the collector's.
WATCHED_TOPICS: tuple[str, ...] = ("classify", *ROUTE_STAGES, TERMINAL_TOPIC, DLQ_TOPIC)
#: A queue's consumer count is trusted this long before a publish asks the broker again.
SERVED_CHECK_S = 5.0
#: While a queue stays unserved, its publish warning repeats at most this often.
WARN_EVERY_S = 60.0
#: A waiting submitter looks at the stage queues this often.
WATCH_PROBE_S = 2.0
#: A waiting submitter repeats what it waits for this often.
REPORT_EVERY_S = 30.0
#: The longest one look at a queue may take (a broker that does not answer is skipped).
PROBE_TIMEOUT_S = 5.0
#: The workers sample the queues for Prometheus this often.
SAMPLE_EVERY_S = 5.0


def serves(topic: str) -> str:
    """Who consumes ``topic``: ``stage nlp``, or ``the collector`` (terminal and DLQ)."""
    return "the collector" if topic in (TERMINAL_TOPIC, DLQ_TOPIC) else f"stage {topic}"


def worker_for(topic: str) -> str:
    """The command that serves ``topic``."""
    stage = "collect" if topic in (TERMINAL_TOPIC, DLQ_TOPIC) else topic
    return f"thunderline worker --stages {stage}"


def waiting_line(stats: QueueStats) -> str:
    """``waiting for stage nlp: no worker serves it (241 messages in queue tl.nlp)``."""
    what = "message" if stats.messages == 1 else "messages"
    return (
        f"waiting for {serves(stats.topic)}: no worker serves it "
        f"({stats.messages} {what} in queue {stats.queue}; start `{worker_for(stats.topic)}`)"
    )


def record(stats: QueueStats) -> None:
    """Set the queue's gauges from what the broker reported."""
    metrics.BUS_QUEUE_MESSAGES.labels(stats.topic).set(stats.messages)
    metrics.BUS_QUEUE_CONSUMERS.labels(stats.topic).set(stats.consumers)


async def look(bus: EventBus, topics: Sequence[str]) -> list[QueueStats]:
    """Every topic's queue now (the gauges are set too).

    A topic the bus cannot answer for is left out (logged at DEBUG: a lost connection is reported by
    the bus itself).
    """
    found: list[QueueStats] = []
    for topic in topics:
        try:
            stats = await asyncio.wait_for(bus.queue_stats(topic), PROBE_TIMEOUT_S)
        except Exception as exc:  # a probe never fails (nor holds up) its caller
            _log.debug("queue of %s not looked at: %s", topic, exc)
            continue
        record(stats)
        found.append(stats)
    return found


class ServedCheck:
    """The publish-side check of one bus (see the module doc): ``after_publish(topic)``."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._seen: dict[str, tuple[float, QueueStats]] = {}
        self._warned: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def stats(self, topic: str) -> QueueStats | None:
        """The queue as last seen, asked again when older than :data:`SERVED_CHECK_S`."""
        seen = self._seen.get(topic)
        if seen is not None and time.monotonic() - seen[0] < SERVED_CHECK_S:
            return seen[1]
        lock = self._locks.setdefault(topic, asyncio.Lock())
        async with lock:  # concurrent publishers ask once
            seen = self._seen.get(topic)
            if seen is not None and time.monotonic() - seen[0] < SERVED_CHECK_S:
                return seen[1]
            found = await look(self.bus, [topic])
            if not found:
                return None
            self._seen[topic] = (time.monotonic(), found[0])
            return found[0]

    async def after_publish(self, topic: str) -> None:
        """Warn (and count) when the queue just published to has no consumer."""
        stats = await self.stats(topic)
        if stats is None:
            return
        if stats.consumers:
            self._warned.pop(topic, None)
            return
        metrics.BUS_UNSERVED_PUBLISHES.labels(topic).inc()
        now = time.monotonic()
        last = self._warned.get(topic)
        if last is None or now - last >= WARN_EVERY_S:
            self._warned[topic] = now
            _log.warning(
                "published to queue %s, which has no consumer: no worker serves %s, so the "
                "message waits there until `%s` runs",
                stats.queue,
                serves(topic),
                worker_for(topic),
            )

    def forget(self) -> None:
        """Drop what was seen (a reconnect: consumers may have come or gone)."""
        self._seen.clear()


class UnservedWatch:
    """What a waiting submitter reports about unserved queues, and its bounded wait.

    :meth:`check` is called from the wait loop with the time of the last progress (a new
    outcome). A queue seen unserved is reported at once (a WARNING, and ``lines`` for the
    caller), then every :data:`REPORT_EVERY_S` while it stays so. With ``timeout_s`` (not 0),
    a queue unserved that long while nothing progressed for as long raises
    :class:`UnservedStageError`: work of other submitters stuck there does not stop a
    submission whose own artifacts keep finishing.
    """

    def __init__(self, bus: EventBus, topics: Sequence[str], timeout_s: float = 0.0) -> None:
        self.bus = bus
        self.topics = list(topics)
        self.timeout_s = timeout_s
        self.since: dict[str, float] = {}  # topic -> when it was first seen unserved
        self._reported: dict[str, float] = {}
        self._probed = 0.0
        self.lines: list[str] = []  # every report, in order (for tests and callers)

    async def check(self, progress_at: float) -> list[QueueStats]:
        """Look at the queues (at most every :data:`WATCH_PROBE_S`); returns the unserved."""
        now = time.monotonic()
        if now - self._probed < WATCH_PROBE_S:
            return []
        self._probed = now
        unserved = [s for s in await look(self.bus, self.topics) if s.unserved]
        current = {s.topic for s in unserved}
        for topic in list(self.since):
            if topic not in current:
                del self.since[topic]
                self._reported.pop(topic, None)
                _log.warning("%s is served again (or its queue drained)", serves(topic))
        for stats in unserved:
            first = self.since.setdefault(stats.topic, now)
            last = self._reported.get(stats.topic)
            if last is None or now - last >= REPORT_EVERY_S:
                self._reported[stats.topic] = now
                line = waiting_line(stats)
                if last is not None:
                    line += f" for {now - first:.0f}s"
                self.lines.append(line)
                _log.warning("%s", line)
            if (
                self.timeout_s > 0
                and now - first >= self.timeout_s
                and now - progress_at >= self.timeout_s
            ):
                raise UnservedStageError(
                    f"gave up after {self.timeout_s:.0f}s (TL_BUS_UNSERVED_TIMEOUT_S): "
                    f"{waiting_line(stats)}. Nothing is lost: the messages stay queued and are "
                    f"processed when that worker starts; `thunderline status ID` follows them",
                    details={
                        "stage": stats.topic,
                        "queue": stats.queue,
                        "messages": stats.messages,
                        "waited_s": round(now - first, 1),
                    },
                )
        return unserved


class QueueSampler:
    """Samples the queues of ``topics`` every ``every_s`` for Prometheus (a worker runs one)."""

    def __init__(
        self, bus: EventBus, topics: Sequence[str], every_s: float = SAMPLE_EVERY_S
    ) -> None:
        self.bus = bus
        self.topics = list(topics)
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling in the background (a no-op when running)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="queue-sampler")

    async def _run(self) -> None:
        while True:
            await look(self.bus, self.topics)
            await asyncio.sleep(self.every_s)

    async def stop(self) -> None:
        """Stop sampling."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
