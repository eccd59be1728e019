"""The scale-out bus: RabbitMQ quorum queues through aio-pika (``amqp://…``).

One durable quorum queue per topic (``<prefix>.<topic>``: a stage, ``terminal`` or ``dlq``).

* **Publishing** uses a channel with publisher confirms: :meth:`RabbitMQBus.publish` returns
  only when the broker has the message durably, so the engine's "publish the outputs, then ack
  the input" order means a message is never acknowledged before its result is safe.
* **Consuming**: the first :meth:`pull` of a topic opens a channel with ``prefetch`` (the
  stage's demand) and a consumer; deliveries wait in a local buffer until pulled. A delivery's
  ``delivery_count`` comes from the broker's ``x-delivery-count``.
* **Quarantine.** When a worker dies, *every* message it held is returned and counted, not
  only the one that killed it. So a redelivered stage message (``x-delivery-count`` ≥ 1) is
  not handed out with the others: it is moved (confirmed publish, then ack) to the stage's
  ``<stage>.quarantine`` queue, consumed with prefetch 1, where it is handed out alone. A
  poison message then only ever spends its own deliveries; the innocent messages it took down
  with it are counted once, quarantined, and processed.
* **Redelivery and dead-lettering belong to the broker.** Stage queues carry
  ``x-delivery-limit`` (``TL_MAX_ATTEMPTS``): a message whose consumer died (crash, SIGKILL,
  dropped connection) is redelivered, and after the limit it is dead-lettered
  (``at-least-once``) into the ``dlq`` queue. Pulling such a message from ``dlq`` turns it into
  our DLQ record (``system.dlq.<stage>_failed``) with the broker's ``x-death`` reason
  (``delivery_limit``, ``rejected``…) kept in ``data.reason`` and ``data.broker``; its id is
  derived from the message (a UUIDv7 at the dead-lettering time), so reading it twice gives
  the same record.
* **Back-pressure**: stage queues are bounded (``x-max-length`` = ``TL_QUEUE_MAX``,
  ``x-overflow=reject-publish``). A refused publish waits and retries (the CLI waits); with
  ``block=False`` it raises :class:`~thunderline.errors.OverloadError` instead (an API answers
  429). The ``terminal`` and ``dlq`` queues are unbounded and never dead-letter.
* **A queue nobody consumes** (issue 23): after a publish the queue's consumer count (a
  passive declare, asked again at most every 5 s) is checked; none means no worker serves
  that stage, which is logged at once as a WARNING naming the stage and the queue and counted
  in ``thunderline_bus_unserved_publishes_total`` (:mod:`thunderline.bus.served`).
* **A broker that does not answer** is an error, not a hang: every round trip (connect, channel,
  declare, publish confirm, consume, cancel, close) waits at most ``op_timeout_s``. A broker can
  accept connections and then answer nothing (one out of file handles blocks every client:
  seen on 3.10 with ~300 quorum queues under ``ulimit -n`` 1024); a publish then retries like
  on a lost connection and fails with :class:`~thunderline.errors.BackendError` after
  ``reconnect_timeout_s``, other calls fail at once, and ``close`` gives up waiting.
* **Reconnection**: ``connect_robust`` reconnects with backoff and restores the channels,
  queues and consumers. Deliveries of the lost connection are dropped from the local buffer
  (the broker redelivers them: never lost) and acknowledging one is a logged no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC, Delivery, QueueStats
from thunderline.bus.clientlogs import quiet_client_logs
from thunderline.bus.served import ServedCheck
from thunderline.config import RetryPolicy
from thunderline.dlq.record import BrokerDeadLetterError, dead_letter, json_safe
from thunderline.errors import BackendError, MalformedEventError, OverloadError
from thunderline.events import CloudEvent, dlq_type_for
from thunderline.obs import metrics

_T = TypeVar("_T")
_log = logging.getLogger("thunderline.bus.rabbitmq")
quiet_client_logs()  # aiormq/aio-pika: no raw tracebacks; one line per loss and reconnect here

_CONTENT_TYPE = "application/cloudevents+json"
#: Suffix of a stage's quarantine queue (redelivered messages, handed out one at a time).
QUARANTINE_SUFFIX = ".quarantine"
#: Header of a quarantined message: how often it was returned before it was quarantined.
RETURNS_HEADER = "x-tl-returns"
_RECONNECT_INTERVAL_S = 1.0
#: Connecting: 0.2 s doubling to 5 s, until ``reconnect_timeout_s``.
CONNECT_RETRY = RetryPolicy(backoff_s=0.2, backoff_max_s=5.0)
#: A publish refused by a full queue (``block``): 20 ms doubling to 1 s, for as long as it takes.
FULL_QUEUE_RETRY = RetryPolicy(backoff_s=0.02, backoff_max_s=1.0)
#: A publish on a lost connection: 0.2 s doubling to 2 s, until ``reconnect_timeout_s``.
LOST_CONNECTION_RETRY = RetryPolicy(backoff_s=0.2, backoff_max_s=2.0)


def stable_uuid7(unix_ms: int, seed: str) -> str:
    """A UUIDv7 whose time is ``unix_ms`` and whose random bits come from ``seed``.

    The same message read twice gives the same id, and ids still sort by time like every event id.
    """
    bits = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:10], "big")
    rand_a = (bits >> 62) & 0xFFF
    rand_b = bits & ((1 << 62) - 1)
    value = (unix_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


class _Consumer:
    """One consumed topic: its channel, queue, consumer tag and local buffer."""

    def __init__(
        self, channel: AbstractChannel, queue: AbstractQueue, readable: asyncio.Condition
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.tag: str | None = None
        self.buffer: deque[AbstractIncomingMessage] = deque()
        self.readable = readable  # shared by a stage queue and its quarantine


class RabbitMQBus:
    """:class:`~thunderline.bus.base.EventBus` over RabbitMQ quorum queues (durable)."""

    #: Messages survive this process: the engine must not dead-letter what it leaves behind.
    durable = True

    def __init__(
        self,
        url: str,
        *,
        prefetch: int = 256,
        max_attempts: int = 3,
        queue_max: int = 1024,
        prefix: str = "thunderline",
        reconnect_timeout_s: float = 60.0,
        prefetch_per_topic: dict[str, int] | None = None,
        op_timeout_s: float = 30.0,
    ) -> None:
        self.url = url
        self.op_timeout_s = op_timeout_s
        self.prefetch = prefetch
        self.prefetch_per_topic = dict(prefetch_per_topic or {})
        self.max_attempts = max_attempts
        self.queue_max = queue_max
        self.prefix = prefix
        self.reconnect_timeout_s = reconnect_timeout_s
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._connect_lock = asyncio.Lock()
        self._declared: set[str] = set()
        self._consumers: dict[str, _Consumer] = {}
        self._consumer_lock = asyncio.Lock()
        self._unacked: dict[str, AbstractIncomingMessage] = {}
        self._ids = itertools.count(1)
        self._depth: dict[str, int] = {}
        self._consuming = True
        self._closed = False
        self.reconnects = 0
        self._lost = False  # between a loss and its reconnect (one log line per loss)
        self._served = ServedCheck(self)  # warns on a publish to a queue nobody consumes

    # ---- names and arguments --------------------------------------------------------------
    def queue_name(self, topic: str) -> str:
        """The RabbitMQ queue of a topic: ``<prefix>.<topic>``."""
        return f"{self.prefix}.{topic}"

    def topic_of(self, queue: str) -> str:
        """The stage a queue belongs to (a quarantine queue belongs to its stage)."""
        return queue.removeprefix(f"{self.prefix}.").removesuffix(QUARANTINE_SUFFIX)

    @staticmethod
    def is_stage_topic(topic: str) -> bool:
        """True for a stage's work queue (not the terminal, DLQ or a quarantine queue)."""
        return topic not in (TERMINAL_TOPIC, DLQ_TOPIC) and not topic.endswith(QUARANTINE_SUFFIX)

    def queue_arguments(self, topic: str) -> dict[str, Any]:
        """Quorum queue arguments: bounded stage queues (and quarantines) dead-lettering to ``dlq``.

        A quarantined message already had its first delivery in the stage queue, so its quarantine
        allows one redelivery fewer: TL_MAX_ATTEMPTS + 1 deliveries in all, as without quarantine.
        """
        args: dict[str, Any] = {"x-queue-type": "quorum"}
        if topic in (TERMINAL_TOPIC, DLQ_TOPIC):
            return args
        quarantine = topic.endswith(QUARANTINE_SUFFIX)
        args.update(
            {
                "x-delivery-limit": max(self.max_attempts - 1, 0)
                if quarantine
                else self.max_attempts,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.queue_name(DLQ_TOPIC),
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
                "x-max-length": self.queue_max,
            }
        )
        return args

    # ---- connection -----------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the connection (retried until ``reconnect_timeout_s``) and the publish channel."""
        async with self._connect_lock:
            if self._connection is not None:
                return
            if self._closed:
                raise BackendError("the RabbitMQ bus is closed")
            deadline = time.monotonic() + self.reconnect_timeout_s
            for attempt in itertools.count(1):
                try:
                    connection = await aio_pika.connect_robust(
                        self.url,
                        reconnect_interval=_RECONNECT_INTERVAL_S,
                        timeout=self.op_timeout_s,
                    )
                    break
                except (OSError, TimeoutError, aiormq.exceptions.AMQPError) as exc:
                    delay = CONNECT_RETRY.delay(attempt)
                    if time.monotonic() + delay > deadline:
                        raise BackendError(
                            f"RabbitMQ not reachable at {self.safe_url}: {exc}"
                        ) from exc
                    _log.warning("RabbitMQ not reachable (%s); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
            connection.reconnect_callbacks.add(self._on_reconnect)
            connection.close_callbacks.add(self._on_close)
            try:
                self._publisher = await self._answer(
                    connection.channel(publisher_confirms=True), "opening a channel"
                )
            except BackendError:
                await self._close_quietly(connection)
                raise
            self._connection = connection

    @property
    def safe_url(self) -> str:
        """The URL without its password (for messages)."""
        head, sep, tail = self.url.rpartition("@")
        if not sep:
            return self.url
        scheme, _, creds = head.partition("://")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{tail}"

    async def _answer(self, awaitable: Awaitable[_T], what: str) -> _T:
        """Await one broker round trip for at most ``op_timeout_s``.

        Raises:
            BackendError: the broker did not answer in time (it is reachable but not serving).
        """
        try:
            async with asyncio.timeout(self.op_timeout_s):
                return await awaitable
        except TimeoutError as exc:
            metrics.BUS_UNANSWERED.inc()
            raise BackendError(
                f"RabbitMQ at {self.safe_url} did not answer {what} within "
                f"{self.op_timeout_s:g}s (a broker out of file handles or memory blocks its "
                "clients: see its log and `rabbitmqctl status`)",
                details={"operation": what, "timeout_s": self.op_timeout_s},
            ) from exc

    async def _close_quietly(self, closable: Any) -> None:
        """Close a channel or connection, waiting at most ``op_timeout_s``; never raises.

        A close the broker never confirms is left behind (its task is not awaited again: a
        cancelled close may not finish either), so shutdown never hangs on it.
        """
        task = asyncio.ensure_future(closable.close())
        done, _ = await asyncio.wait({task}, timeout=self.op_timeout_s)
        if not done:
            _log.warning("RabbitMQ did not confirm a close within %gs; left", self.op_timeout_s)
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            return
        with contextlib.suppress(Exception):
            task.result()

    def _on_close(self, _connection: Any, exc: BaseException | None = None) -> None:
        # called again for every failed reconnect attempt: one line (and count) per loss
        if not self._closed and not self._lost:
            self._lost = True
            _log.warning("RabbitMQ connection lost (%s); reconnecting", exc)
            metrics.BUS_CONNECTION_LOST.inc()
        self._purge_stale()

    def _on_reconnect(self, _connection: Any) -> None:
        self._lost = False
        self._served.forget()
        self.reconnects += 1
        metrics.BUS_RECONNECTS.inc()
        _log.warning("RabbitMQ connection restored (reconnect #%d)", self.reconnects)
        self._purge_stale()

    def _purge_stale(self) -> None:
        """Forget deliveries of a lost channel: the broker redelivers them."""
        for consumer in self._consumers.values():
            kept = deque(m for m in consumer.buffer if not _stale(m))
            dropped = len(consumer.buffer) - len(kept)
            consumer.buffer = kept
            if dropped:
                _log.info("dropped %d buffered deliveries of a lost channel", dropped)

    async def _declare(self, channel: AbstractChannel, topic: str) -> AbstractQueue:
        """The queue of ``topic`` on ``channel`` (declared with our arguments first)."""
        await self._ensure_declared(topic)
        return await self._answer(
            channel.declare_queue(self.queue_name(topic), passive=True),
            f"declaring queue {self.queue_name(topic)}",
        )

    async def _ensure_declared(self, topic: str) -> None:
        """Declare the queue once (the DLQ first: dead-lettering into a missing queue loses it).

        A queue that exists with other arguments (another process has a different
        ``TL_MAX_ATTEMPTS`` or ``TL_QUEUE_MAX``) is used as it is, with a warning.
        """
        if topic in self._declared:
            return
        if topic != DLQ_TOPIC:
            await self._ensure_declared(DLQ_TOPIC)
        await self.connect()
        assert self._connection is not None
        channel = await self._answer(self._connection.channel(), "opening a channel")
        try:
            queue = await self._answer(
                channel.declare_queue(
                    self.queue_name(topic), durable=True, arguments=self.queue_arguments(topic)
                ),
                f"declaring queue {self.queue_name(topic)}",
            )
            result = queue.declaration_result
            self._depth[topic] = int(getattr(result, "message_count", 0) or 0)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            _log.warning(
                "queue %s exists with other arguments; using it as it is (%s)",
                self.queue_name(topic),
                exc,
            )
        finally:
            await self._close_quietly(channel)
        self._declared.add(topic)

    async def declare(self, topics: Sequence[str]) -> None:
        """Declare the queues of ``topics`` (a worker does this at start, before any traffic)."""
        for topic in topics:
            await self._ensure_declared(topic)

    def describe(self) -> str:
        """One line naming the broker (password masked) and the queue pattern."""
        return f"rabbitmq {self.safe_url} (queues {self.queue_name('*')})"

    # ---- publish --------------------------------------------------------------------------
    async def publish(
        self, topic: str, payload: bytes, *, block: bool = True, bounded: bool = True
    ) -> str:
        """Publish with a broker confirm.

        A full queue makes it wait and retry (``block``) or raise :class:`OverloadError`; a lost
        connection makes it wait for the reconnection (at most ``reconnect_timeout_s``) and resend.
        ``bounded`` is not honoured: ``x-max-length`` bounds every publish to a queue, so a stage
        output re-entering an upstream stage waits like any other (a known limit: see
        ``docs/ARCHITECTURE.md``, "Cycles and back-pressure").
        """
        message_id = str(uuid.uuid4())
        message = aio_pika.Message(
            payload,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            content_type=_CONTENT_TYPE,
        )
        await self._publish_message(topic, message, block=block)
        await self._served.after_publish(topic)
        return message_id

    async def _publish_message(self, topic: str, message: aio_pika.Message, *, block: bool) -> None:
        await self._ensure_declared(topic)
        refused = lost = 0
        lost_since: float | None = None
        while True:
            assert self._publisher is not None
            try:
                await self._publisher.default_exchange.publish(
                    message,
                    routing_key=self.queue_name(topic),
                    mandatory=True,
                    timeout=self.op_timeout_s,
                )
                return
            except aiormq.exceptions.PublishError as exc:  # unroutable: the queue vanished
                self._declared.discard(topic)
                _log.warning("queue %s missing on publish (%s); declaring it", topic, exc)
                await self._ensure_declared(topic)
            except aiormq.exceptions.DeliveryError as exc:  # Basic.Nack: reject-publish overflow
                metrics.BUS_PUBLISH_REFUSED.labels(topic).inc()
                if not block:
                    raise OverloadError(
                        f"queue {topic!r} is full (x-max-length {self.queue_max}); retry later",
                        details={"topic": topic},
                    ) from exc
                refused += 1
                await asyncio.sleep(FULL_QUEUE_RETRY.delay(refused))
            except Exception as exc:
                if not _connection_lost(exc):
                    raise
                if isinstance(exc, TimeoutError):
                    metrics.BUS_UNANSWERED.inc()
                now = time.monotonic()
                lost_since = lost_since or now
                if now - lost_since > self.reconnect_timeout_s:
                    raise BackendError(
                        f"RabbitMQ unavailable for {self.reconnect_timeout_s:.0f}s: "
                        f"{str(exc) or type(exc).__name__}"
                    ) from exc
                _log.info(
                    "publish to %s failed (%s); waiting for the connection",
                    topic,
                    str(exc) or type(exc).__name__,
                )
                lost += 1
                await asyncio.sleep(LOST_CONNECTION_RETRY.delay(lost))

    # ---- consume --------------------------------------------------------------------------
    async def _consumer(self, topic: str) -> _Consumer:
        consumer = self._consumers.get(topic)
        if consumer is not None:
            return consumer
        async with self._consumer_lock:
            consumer = self._consumers.get(topic)
            if consumer is not None:
                return consumer
            readable = asyncio.Condition()
            if self.is_stage_topic(topic):
                quarantine = topic + QUARANTINE_SUFFIX
                self._consumers[quarantine] = await self._open_consumer(quarantine, 1, readable)
            prefetch = self.prefetch_per_topic.get(topic, self.prefetch)
            consumer = await self._open_consumer(topic, prefetch, readable)
            self._consumers[topic] = consumer
            return consumer

    async def _open_consumer(
        self, topic: str, prefetch: int, readable: asyncio.Condition
    ) -> _Consumer:
        await self.connect()
        assert self._connection is not None
        channel = await self._answer(self._connection.channel(), "opening a channel")
        await self._answer(channel.set_qos(prefetch_count=prefetch), "setting the prefetch")
        queue = await self._declare(channel, topic)
        consumer = _Consumer(channel, queue, readable)

        async def on_message(message: AbstractIncomingMessage) -> None:
            consumer.buffer.append(message)
            async with consumer.readable:
                consumer.readable.notify()

        if self._consuming:
            consumer.tag = await self._answer(
                queue.consume(on_message, no_ack=False), f"consuming {queue.name}"
            )
        return consumer

    async def _quarantine(self, topic: str, message: AbstractIncomingMessage) -> None:
        """Move a redelivered stage message to its stage's quarantine queue, then ack it here.

        The move is broker-confirmed; the message is handed out again one at a time, never next to
        another suspect.
        """
        total = _returns(message, default=1)
        moved = aio_pika.Message(
            message.body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            content_type=message.content_type,
            headers={RETURNS_HEADER: total},
        )
        await self._publish_message(topic + QUARANTINE_SUFFIX, moved, block=True)
        metrics.BUS_QUARANTINED.labels(topic).inc()
        _log.info("redelivered message on %s quarantined (returned %d times)", topic, total)
        if not _stale(message):
            await self._ack_message(message)

    def _delivery(self, topic: str, message: AbstractIncomingMessage) -> Delivery:
        delivery_id = str(next(self._ids))
        self._unacked[delivery_id] = message
        payload = message.body
        if topic == DLQ_TOPIC and message.headers.get("x-death"):
            payload = self.dead_letter_record(message)
        returns = _returns(message, default=0)
        return Delivery(
            topic=topic, payload=payload, message_id=delivery_id, delivery_count=returns + 1
        )

    async def pull(
        self, topic: str, consumer: str, max_count: int, timeout: float
    ) -> list[Delivery]:
        """Take up to ``max_count`` messages of a stage (its quarantine queue first), waiting up to ``timeout``."""
        c = await self._consumer(topic)
        q = self._consumers.get(topic + QUARANTINE_SUFFIX) if self.is_stage_topic(topic) else None
        out: list[Delivery] = []
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if not c.buffer and not (q and q.buffer):
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    async with c.readable:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(
                                c.readable.wait_for(lambda: bool(c.buffer or (q and q.buffer))),
                                remaining,
                            )
            for _ in range(3):  # let deliveries that arrived in the same read reach the buffer
                if len(c.buffer) >= max_count:
                    break
                await asyncio.sleep(0)
            if q is not None and q.buffer and len(out) < max_count:
                message = q.buffer.popleft()  # prefetch 1: at most one suspect at a time
                if not _stale(message):
                    out.append(self._delivery(topic, message))
            while c.buffer and len(out) < max_count:
                message = c.buffer.popleft()
                if _stale(message):
                    continue
                if q is not None and message.headers.get("x-delivery-count"):
                    await self._quarantine(topic, message)
                    continue
                out.append(self._delivery(topic, message))
            if out or time.monotonic() >= deadline:
                return out

    async def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivered message to the broker (a stale one from a lost channel is dropped)."""
        message = self._unacked.pop(delivery.message_id, None)
        delivery.acked = True
        if message is None:
            return
        if _stale(message):
            metrics.BUS_STALE_ACKS.inc()
            _log.info("ack of a delivery from a lost channel skipped (the broker redelivers it)")
            return
        await self._ack_message(message)

    async def _ack_message(self, message: AbstractIncomingMessage) -> None:
        """Send one ack, waiting at most ``op_timeout_s``.

        An ack that fails is never an error of the message: the broker still holds it and
        hands it out again once its channel closes, and the collector records each artifact
        once. A connection lost while the ack is written fails its future with whatever the
        client library was given (a bare ``Exception`` when the socket just closed), so every
        ``Exception`` counts as a lost ack here.
        """
        try:
            await self._answer(message.ack(), "an ack")
        except Exception as exc:  # any failure is a lost ack (see above)
            metrics.BUS_STALE_ACKS.inc()
            _log.info(
                "ack failed (%s); the broker will redeliver the message",
                str(exc) or type(exc).__name__,
            )

    # ---- dead letters from the broker -----------------------------------------------------
    def dead_letter_record(self, message: AbstractIncomingMessage) -> bytes:
        """Our DLQ record for a message the broker dead-lettered (reason from ``x-death``)."""
        deaths = json_safe(message.headers.get("x-death") or [])
        first = deaths[0] if deaths and isinstance(deaths[0], dict) else {}
        reason = str(first.get("reason") or "dead_lettered")
        queue = str(
            json_safe(message.headers.get("x-first-death-queue")) or first.get("queue") or ""
        )
        stage = self.topic_of(queue) or "unknown"
        attempts = _returns(message, default=int(first.get("count") or 1))
        try:
            original: CloudEvent | None = CloudEvent.from_json(message.body)
        except MalformedEventError:
            original = None
        if original is not None and original.is_dlq:
            return message.body  # our own record, dead-lettered again: keep it as it is
        text = (
            f"RabbitMQ dead-lettered the message from queue {queue} ({reason}); "
            f"the consumer failed or died on every one of its deliveries"
            if reason == "delivery_limit"
            else f"RabbitMQ dead-lettered the message from queue {queue} ({reason})"
        )
        seed = f"{original.id if original else message.message_id}/{queue}/{reason}"
        raw_deaths = message.headers.get("x-death")
        first_raw = raw_deaths[0] if isinstance(raw_deaths, list) and raw_deaths else None
        died = first_raw.get("time") if isinstance(first_raw, dict) else None
        when = died if isinstance(died, datetime) else message.timestamp or datetime.now(UTC)
        event = dead_letter(
            stage,
            dlq_type_for(stage),
            BrokerDeadLetterError(text, reason=reason, details={"queue": queue}),
            original=original,
            raw=message.body,
            attempts=attempts,
            source=f"urn:thunderline:broker:{queue}",
            record_id=stable_uuid7(int(when.timestamp() * 1000), seed),
            extra={"broker": {"x-death": deaths, "x-first-death-queue": queue}},
        )
        metrics.DLQ_TOTAL.labels(stage, reason).inc()
        return event.to_bytes()

    # ---- depth, drain, close --------------------------------------------------------------
    def depth(self, topic: str) -> int:
        """Messages waiting on ``topic``: the last broker count seen plus the local buffer."""
        consumer = self._consumers.get(topic)
        buffered = len(consumer.buffer) if consumer is not None else 0
        return self._depth.get(topic, 0) + buffered

    async def queue_depth(self, topic: str) -> int:
        """Messages ready on ``topic`` in the broker now (a passive declare)."""
        count = (await self.queue_stats(topic)).messages
        self._depth[topic] = count
        metrics.QUEUE_DEPTH.labels(topic).set(count)
        return count

    async def queue_stats(self, topic: str) -> QueueStats:
        """Ready messages and consumers of ``topic``'s queue now.

        This is the broker's answer to a passive declare (no management plugin needed); a missing
        queue has neither.
        """
        await self.connect()
        assert self._connection is not None
        name = self.queue_name(topic)
        channel = await self._answer(self._connection.channel(), "opening a channel")
        try:
            queue = await self._answer(
                channel.declare_queue(name, passive=True), f"declaring queue {name}"
            )
            result = queue.declaration_result
            count = int(getattr(result, "message_count", 0) or 0)
            consumers = int(getattr(result, "consumer_count", 0) or 0)
        except aiormq.exceptions.ChannelNotFoundEntity:
            count = consumers = 0
        finally:
            await self._close_quietly(channel)
        return QueueStats(topic, name, count, consumers)

    @property
    def held(self) -> int:
        """Deliveries this process holds: buffered (not yet pulled) plus pulled, not acked."""
        buffered = sum(len(c.buffer) for c in self._consumers.values())
        return buffered + sum(1 for m in self._unacked.values() if not _stale(m))

    async def prepare_for_draining(self) -> None:
        """Cancel every consumer: the broker sends no more; what is held can still be acked."""
        self._consuming = False
        for consumer in self._consumers.values():
            if consumer.tag is not None:
                with contextlib.suppress(Exception):
                    await consumer.queue.cancel(consumer.tag, timeout=self.op_timeout_s)
                consumer.tag = None

    async def close(self) -> None:
        """Close the connection; unacknowledged deliveries go back to their queues."""
        self._closed = True
        connection, self._connection = self._connection, None
        self._consumers.clear()
        self._unacked.clear()
        if connection is not None:
            await self._close_quietly(connection)


def _returns(message: AbstractIncomingMessage, *, default: int) -> int:
    """How often the broker returned the message, plus its returns before quarantine.

    The count is ``x-delivery-count`` (else ``default``) plus the returns before the message was
    quarantined (``x-tl-returns``).
    """
    count = message.headers.get("x-delivery-count")
    before = message.headers.get(RETURNS_HEADER)
    return (int(count) if isinstance(count, int) else default) + (
        int(before) if isinstance(before, int) else 0
    )


def _connection_lost(exc: BaseException) -> bool:
    """True for the ways a publish fails when its channel or connection went away.

    Besides aiormq's own errors, a connection closed without a reason fails every pending
    future with a bare ``Exception`` (``FutureStore.reject_all(None)``); a confirm that did not
    come within ``op_timeout_s`` is a ``TimeoutError``.
    """
    return type(exc) is Exception or isinstance(
        exc,
        aiormq.exceptions.AMQPError
        | aiormq.exceptions.ChannelInvalidStateError
        | ConnectionError
        | TimeoutError,
    )


def _stale(message: AbstractIncomingMessage) -> bool:
    """True when the message came on a channel that has closed (its delivery tag is void)."""
    try:
        message.channel  # noqa: B018 - raises when the channel has closed
    except aiormq.exceptions.ChannelInvalidStateError:
        return True
    return False
