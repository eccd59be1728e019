"""The RabbitMQ bus against the real broker (own vhost, own queue prefix per test)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from tests.integration.scale.proxy import TcpProxy

from thunderline.bus.rabbitmq import RabbitMQBus
from thunderline.errors import OverloadError
from thunderline.events import DLQ_CLASSIFY, INGEST_RECEIVED, CloudEvent, new_event

BusFactory = Callable[..., RabbitMQBus]


@pytest.fixture
async def make_bus(rabbitmq_url: str, bus_prefix: str) -> AsyncIterator[BusFactory]:
    opened: list[RabbitMQBus] = []

    def factory(url: str | None = None, **kwargs: Any) -> RabbitMQBus:
        kwargs.setdefault("prefix", bus_prefix)
        bus = RabbitMQBus(url or rabbitmq_url, **kwargs)
        opened.append(bus)
        return bus

    yield factory
    for bus in opened:
        await bus.close()


def _event(n: int) -> CloudEvent:
    return new_event(INGEST_RECEIVED, {"artifact": {"name": f"f{n}"}, "route": ["classify"]})


async def _pull_n(
    bus: RabbitMQBus, topic: str, n: int, timeout: float = 10.0, *, ack: bool = False
) -> list[Any]:
    got: list[Any] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < n and asyncio.get_running_loop().time() < deadline:
        batch = await bus.pull(topic, "t", n - len(got), 0.2)
        got.extend(batch)
        if ack:
            for delivery in batch:
                await bus.ack(delivery)
    return got


async def test_publish_pull_ack_and_redelivery_of_unacked(make_bus: BusFactory) -> None:
    bus = make_bus(prefetch=10)
    events = [_event(i) for i in range(5)]
    for e in events:
        await bus.publish("classify", e.to_bytes())
    assert await bus.queue_depth("classify") == 5
    got = await _pull_n(bus, "classify", 5)
    assert [CloudEvent.from_json(d.payload).id for d in got] == [e.id for e in events]
    assert all(d.delivery_count == 1 for d in got)
    for d in got[:3]:
        await bus.ack(d)
    await bus.close()  # two deliveries never acked: the broker keeps them

    again = make_bus(prefetch=10)
    # redelivered messages are quarantined and handed out one at a time
    one = await _pull_n(again, "classify", 2, timeout=2.0)
    assert len(one) == 1 and one[0].delivery_count == 2
    await again.ack(one[0])
    other = await _pull_n(again, "classify", 1)
    assert {CloudEvent.from_json(d.payload).id for d in one + other} == {e.id for e in events[3:]}
    assert other[0].delivery_count == 2
    await again.ack(other[0])
    assert await again.queue_depth("classify") == 0
    assert await again.queue_depth("classify.quarantine") == 0


async def test_a_crash_counts_against_the_poison_message_only(make_bus: BusFactory) -> None:
    """A consumer dies holding a poison message and 5 others, again and again: the others
    are quarantined once and processed; only the poison reaches the delivery limit."""
    poison, *others = [_event(i) for i in range(6)]
    first = make_bus(max_attempts=2, prefetch=10)
    for e in (poison, *others):
        await first.publish("classify", e.to_bytes())
    await first.close()
    done: set[str] = set()
    for _ in range(12):
        bus = make_bus(max_attempts=2, prefetch=10)
        got = await bus.pull("classify", "t", 10, 2.0)
        for d in got:
            event = CloudEvent.from_json(d.payload)
            if event.id != poison.id:
                done.add(event.id)
                await bus.ack(d)
        await bus.close()  # "crash" while holding the poison (if it was handed out)
        if done == {e.id for e in others} and not got:
            break
    assert done == {e.id for e in others}
    collector = make_bus(max_attempts=2)
    (record,) = await _pull_n(collector, "dlq", 1)
    dead = CloudEvent.from_json(record.payload)
    assert dead.data["original"]["id"] == poison.id
    assert dead.data["reason"] == "delivery_limit" and dead.data["stage"] == "classify"
    assert dead.data["attempts"] >= 2
    await collector.ack(record)


async def test_delivery_limit_dead_letters_with_the_brokers_reason(make_bus: BusFactory) -> None:
    poison = _event(0)
    first = make_bus(max_attempts=2)
    await first.publish("classify", poison.to_bytes())
    await first.close()
    for attempt in range(3):  # a consumer that dies before acking, every time
        bus = make_bus(max_attempts=2)
        got = await _pull_n(bus, "classify", 1)
        assert len(got) == 1 and got[0].delivery_count == attempt + 1
        await bus.close()
    collector = make_bus(max_attempts=2)
    assert await _pull_n(collector, "classify", 1, timeout=1.0) == []
    records = await _pull_n(collector, "dlq", 1)
    assert len(records) == 1
    record = CloudEvent.from_json(records[0].payload)
    assert record.type == DLQ_CLASSIFY and record.is_dlq
    assert record.data["reason"] == "delivery_limit"
    assert record.data["stage"] == "classify"
    assert record.data["original"]["id"] == poison.id
    assert record.correlationid == poison.correlationid and record.causationid == poison.id
    assert record.data["broker"]["x-death"][0]["reason"] == "delivery_limit"
    # the record is the same each time the message is read (stable id for idempotent collectors)
    await collector.close()
    again = make_bus(max_attempts=2)
    reread = await _pull_n(again, "dlq", 1)
    assert CloudEvent.from_json(reread[0].payload).id == record.id
    await again.ack(reread[0])


async def test_full_queue_refuses_or_waits(make_bus: BusFactory) -> None:
    bus = make_bus(queue_max=3)
    sent = 0
    with pytest.raises(OverloadError):
        for i in range(20):  # quorum queues are soft by one: do not test an exact bound
            await bus.publish("nlp", _event(i).to_bytes(), block=False)
            sent += 1
    assert 3 <= sent <= 5
    # a blocking publish waits for room, which a consumer makes
    waiting = asyncio.create_task(bus.publish("nlp", _event(99).to_bytes()))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    consumer = make_bus(queue_max=3, prefetch=1)
    got = await _pull_n(consumer, "nlp", 1)
    await consumer.ack(got[0])
    await asyncio.wait_for(waiting, 10)
    # terminal and dlq are never bounded
    for i in range(10):
        await bus.publish("terminal", _event(i).to_bytes(), block=False)


async def test_dropped_connection_redelivers_and_publish_waits(
    make_bus: BusFactory, rabbitmq_url: str
) -> None:
    with TcpProxy.for_url(rabbitmq_url) as proxy:
        via_proxy = proxy.via(rabbitmq_url)
        bus = make_bus(via_proxy, prefetch=10)
        events = [_event(i) for i in range(4)]
        for e in events:
            await bus.publish("classify", e.to_bytes())
        held = await _pull_n(bus, "classify", 4)
        assert len(held) == 4
        await bus.ack(held[0])
        await asyncio.sleep(0.5)  # an ack is not confirmed: let it reach the broker first

        cutter = threading.Thread(target=proxy.cut_for, args=(2.0,))
        cutter.start()
        await asyncio.sleep(0.3)
        late = _event(100)
        await bus.publish("classify", late.to_bytes())  # waits for the reconnection, then sends
        cutter.join()
        for d in held[1:]:
            await bus.ack(d)  # stale: a no-op, the broker redelivers them
        expected = {e.id for e in events[1:]} | {late.id}
        got = []
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            got.extend(await _pull_n(bus, "classify", 1, timeout=0.5, ack=True))
            if {CloudEvent.from_json(d.payload).id for d in got} >= expected:
                break
        ids = [CloudEvent.from_json(d.payload).id for d in got]
        assert set(ids) == expected  # nothing lost (at-least-once: a resend may duplicate)
        assert len(ids) <= len(expected) + 1
        assert all(d.delivery_count == 2 for d in got if d.payload != late.to_bytes())
        assert bus.reconnects >= 1 and proxy.refused >= 1
        assert await bus.queue_depth("classify") == 0
        await bus.close()  # while the proxy still runs


async def test_an_ack_lost_with_the_socket_is_logged_and_the_message_comes_back(
    make_bus: BusFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection that closes while an ack is written fails the ack's future with a bare
    ``Exception`` (aiormq's drain future; CI saw it in a worker's log as a traceback). The ack
    is lost, not the message: one log line, the stale-ack counter, and the broker hands the
    message out again."""
    from aio_pika.abc import AbstractIncomingMessage

    from thunderline.obs import metrics

    bus = make_bus(prefetch=10)
    event = _event(1)
    await bus.publish("classify", event.to_bytes())
    [held] = await _pull_n(bus, "classify", 1)

    async def lost_with_the_socket(self: AbstractIncomingMessage, multiple: bool = False) -> None:
        raise Exception  # exactly what the client library raises here

    stale = metrics.BUS_STALE_ACKS._value.get()
    with monkeypatch.context() as patch:  # the injected fault: this one ack is lost
        patch.setattr(type(bus._unacked[held.message_id]), "ack", lost_with_the_socket)
        with caplog.at_level("INFO", logger="thunderline.bus.rabbitmq"):
            await bus.ack(held)  # no exception reaches the engine
    assert metrics.BUS_STALE_ACKS._value.get() == stale + 1
    assert "ack failed (Exception); the broker will redeliver the message" in caplog.text
    await bus.close()  # the broker still holds the message it never saw acked

    again = make_bus(prefetch=10)
    [back] = await _pull_n(again, "classify", 1)
    assert CloudEvent.from_json(back.payload).id == event.id and back.delivery_count == 2
    await again.ack(back)
    assert await again.queue_depth("classify") == 0
    assert await again.queue_depth("classify.quarantine") == 0


async def test_a_publish_lost_with_the_socket_is_sent_again(
    make_bus: BusFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The same bare ``Exception`` on a publish (its confirm future rejected as the connection
    closed) is a lost connection: the publish waits and is sent again, the event arrives."""
    import aio_pika

    bus = make_bus(prefetch=10)
    await bus.publish("classify", _event(0).to_bytes())  # connected, queue declared
    real = aio_pika.Exchange.publish
    calls = 0

    async def lost_once(self: aio_pika.Exchange, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Exception  # the injected fault: the first try dies with its socket
        return await real(self, *args, **kwargs)

    event = _event(1)
    with monkeypatch.context() as patch, caplog.at_level("INFO", "thunderline.bus.rabbitmq"):
        patch.setattr(aio_pika.Exchange, "publish", lost_once)
        await bus.publish("classify", event.to_bytes())
    assert calls == 2
    assert "publish to classify failed (Exception); waiting for the connection" in caplog.text
    got = await _pull_n(bus, "classify", 2, ack=True)
    assert [CloudEvent.from_json(d.payload).id for d in got][1] == event.id
