"""The embedded in-process bus: one bounded asyncio queue per topic.

Bounded with an overflow policy: ``block`` makes publishers wait (backpressure all the way up to
the CLI), ``drop_oldest`` pushes the oldest waiting message out and hands it to ``on_drop``,
which the pipeline turns into a ``system.dlq.overload`` record, so nothing vanishes.
The DLQ and terminal topics are never dropped from. A publish with ``bounded=False`` (a stage's
output re-entering an upstream stage: the engine's back edges) ignores the bound: it waits for
nothing and drops nothing, so the cycle archive members make cannot deadlock; the bound then
holds back new submissions until the queue is below it again.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Sequence

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC, Delivery, DropHandler, QueueStats
from thunderline.config import OverflowPolicy
from thunderline.errors import OverloadError
from thunderline.obs import metrics


class _Topic:
    def __init__(self) -> None:
        self.items: deque[Delivery] = deque()
        self.readable = asyncio.Condition()
        self.writable = asyncio.Condition()
        self.unacked: dict[str, Delivery] = {}
        self.consumers: set[str] = set()  # the names that pulled from it (until draining)
        self.unbounded: set[str] = set()  # ids of waiting messages published with bounded=False


class MemoryBus:
    """In-process bus for one machine (the default, ``memory://``). Not durable."""

    durable = False

    def __init__(
        self,
        maxsize: int = 1024,
        overflow: OverflowPolicy = OverflowPolicy.BLOCK,
        on_drop: DropHandler | None = None,
    ) -> None:
        self.maxsize = maxsize
        self.overflow = OverflowPolicy(overflow)
        self.on_drop = on_drop
        self._topics: dict[str, _Topic] = {}
        self._ids = itertools.count(1)
        self._closed = False

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic()
        return topic

    def _bounded(self, name: str) -> bool:
        return name not in (DLQ_TOPIC, TERMINAL_TOPIC)

    def describe(self) -> str:
        """One line naming the backend, its queue size and overflow policy."""
        return f"in-process (memory://), queues of {self.maxsize} ({self.overflow.value})"

    async def connect(self) -> None:
        """Nothing to connect to."""

    async def declare(self, topics: Sequence[str]) -> None:
        """Topics are made on first use."""

    async def prepare_for_draining(self) -> None:
        """Nothing feeds this bus from outside the process; its consumers are forgotten."""
        for t in self._topics.values():
            t.consumers.clear()

    async def publish(
        self, topic: str, payload: bytes, *, block: bool = True, bounded: bool = True
    ) -> str:
        """Append to the topic's queue; a full bounded queue waits, refuses or drops (and dead-letters) by policy.

        ``bounded=False`` (a stage's output re-entering an upstream topic) is appended even to a
        full queue and pushes nothing out: it neither waits nor drops, whatever the policy; and
        ``drop_oldest`` never drops it later (a bounded publish drops the oldest message that was
        bounded too, else itself), so an archive member is never dead-lettered for overload.
        """
        t = self._topic(topic)
        message_id = str(next(self._ids))
        delivery = Delivery(topic=topic, payload=payload, message_id=message_id)
        dropped: Delivery | None = None
        if bounded and self._bounded(topic) and len(t.items) >= self.maxsize:
            if self.overflow is OverflowPolicy.BLOCK:
                if not block:
                    raise OverloadError(
                        f"queue {topic!r} is full ({self.maxsize} waiting); retry later",
                        details={"topic": topic},
                    )
                async with t.writable:
                    await t.writable.wait_for(lambda: len(t.items) < self.maxsize)
            else:
                dropped = self._oldest_bounded(t) or delivery
        if dropped is not delivery:
            t.items.append(delivery)
            if not bounded:
                t.unbounded.add(message_id)
        metrics.QUEUE_DEPTH.labels(topic).set(len(t.items))
        async with t.readable:
            t.readable.notify()
        if dropped is not None and self.on_drop is not None:
            await self.on_drop(topic, dropped.payload)
        return message_id

    @staticmethod
    def _oldest_bounded(t: _Topic) -> Delivery | None:
        """Take out the oldest waiting message that was published bounded (None: there is none)."""
        for i, delivery in enumerate(t.items):
            if delivery.message_id not in t.unbounded:
                del t.items[i]
                return delivery
        return None

    async def pull(
        self, topic: str, consumer: str, max_count: int, timeout: float
    ) -> list[Delivery]:
        """Take up to ``max_count`` messages, waiting up to ``timeout`` seconds for the first."""
        t = self._topic(topic)
        t.consumers.add(consumer)
        if not t.items:
            async with t.readable:
                try:
                    await asyncio.wait_for(t.readable.wait_for(lambda: bool(t.items)), timeout)
                except TimeoutError:
                    return []
        out: list[Delivery] = []
        while t.items and len(out) < max_count:
            delivery = t.items.popleft()
            t.unbounded.discard(delivery.message_id)
            t.unacked[delivery.message_id] = delivery
            out.append(delivery)
        metrics.QUEUE_DEPTH.labels(topic).set(len(t.items))
        if out:
            async with t.writable:
                t.writable.notify_all()
        return out

    async def ack(self, delivery: Delivery) -> None:
        """Forget a delivered message (it will not be delivered again)."""
        self._topic(delivery.topic).unacked.pop(delivery.message_id, None)
        delivery.acked = True

    def depth(self, topic: str) -> int:
        """Messages waiting in a topic (not delivered yet)."""
        return len(self._topic(topic).items)

    async def queue_depth(self, topic: str) -> int:
        """Messages waiting in a topic (the protocol's async form of :meth:`depth`)."""
        return self.depth(topic)

    async def queue_stats(self, topic: str) -> QueueStats:
        """What waits on ``topic`` and how many consumers (distinct names) pulled from it."""
        t = self._topic(topic)
        return QueueStats(topic, topic, len(t.items), len(t.consumers))

    def unacked(self, topic: str) -> int:
        """Messages of a topic delivered and not yet acknowledged."""
        return len(self._topic(topic).unacked)

    @property
    def held(self) -> int:
        """Messages delivered and not yet acknowledged, over every topic."""
        return sum(len(t.unacked) for t in self._topics.values())

    async def close(self) -> None:
        """Refuse further publishes."""
        self._closed = True
        for t in self._topics.values():
            t.consumers.clear()
