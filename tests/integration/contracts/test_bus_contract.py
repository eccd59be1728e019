"""The EventBus contract: what the engine relies on, run over every bus (``BUS_FACTORIES``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC, Delivery, EventBus
from thunderline.classify import ClassifyStage
from thunderline.config import Settings
from thunderline.eventdata import Artifact
from thunderline.events import VOXEL_CREATED
from thunderline.objects.local import LocalObjectStore
from thunderline.testing import ingest, run_stages
from thunderline.voxel.stage import PackageStage


def topic() -> str:
    """A topic of this test's own (backends shared between tests never mix messages)."""
    return f"contract-{uuid.uuid4().hex[:10]}"


async def drain(bus: EventBus, name: str, want: int, timeout_s: float = 10.0) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got.extend(await bus.pull(name, "c", want - len(got), 0.2))
    return got


async def test_it_is_an_event_bus_and_says_whether_it_is_durable(bus: EventBus) -> None:
    assert isinstance(bus, EventBus)
    assert isinstance(bus.durable, bool)
    shown = bus.describe()
    assert shown and "guest:guest" not in shown  # never a password


async def test_declared_topics_exist_and_queue_depth_counts_what_waits(bus: EventBus) -> None:
    """``connect`` and ``declare`` make a topic ready before any traffic (no-ops in-process);
    ``queue_depth`` asks the backend now."""
    name = topic()
    await bus.connect()
    await bus.declare([name])
    assert await bus.queue_depth(name) == 0
    for i in range(3):
        await bus.publish(name, str(i).encode(), block=False)  # room: it never waits
    assert await bus.queue_depth(name) == 3
    for delivery in await drain(bus, name, 3):
        await bus.ack(delivery)


async def test_queue_stats_count_what_waits_and_who_consumes_it(bus: EventBus) -> None:
    """A topic nobody pulls from has messages and no consumer (unserved: issue 23); a
    consumer pulling from it is counted."""
    name = topic()
    await bus.connect()
    await bus.declare([name])
    empty = await bus.queue_stats(name)
    assert (empty.topic, empty.messages, empty.consumers, empty.unserved) == (name, 0, 0, False)
    assert name in empty.queue
    for i in range(2):
        await bus.publish(name, str(i).encode())
    waiting = await bus.queue_stats(name)
    assert (waiting.messages, waiting.consumers, waiting.unserved) == (2, 0, True)
    got = await drain(bus, name, 1)
    served = await bus.queue_stats(name)
    assert served.consumers >= 1 and not served.unserved
    for delivery in got + await drain(bus, name, 1):
        await bus.ack(delivery)


async def test_held_counts_what_this_process_holds_and_draining_keeps_acks_working(
    bus: EventBus,
) -> None:
    """What the engine's shutdown relies on: after ``prepare_for_draining`` no new message
    is handed out by the backend, and what is held can still be acknowledged until ``held``
    is 0."""
    name = topic()
    assert bus.held == 0
    for i in range(2):
        await bus.publish(name, str(i).encode())
    got = await drain(bus, name, 2)
    assert len(got) == 2 and bus.held >= 2
    await bus.prepare_for_draining()
    for delivery in got:
        await bus.ack(delivery)
    assert bus.held == 0


async def test_payload_bytes_arrive_unchanged_with_unique_ids(bus: EventBus) -> None:
    name = topic()
    payloads = [b"", b"\x00\xff\xfe not utf-8", "é ✓".encode(), b"x" * 256_000]
    ids = [await bus.publish(name, p) for p in payloads]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids)
    got = await drain(bus, name, len(payloads))
    assert [d.payload for d in got] == payloads  # in publish order
    assert {d.topic for d in got} == {name}
    assert len({d.message_id for d in got}) == len(got)
    for delivery in got:
        await bus.ack(delivery)


async def test_pull_takes_at_most_max_count_and_depth_counts_the_rest(bus: EventBus) -> None:
    name = topic()
    for i in range(5):
        await bus.publish(name, str(i).encode())
    first = await bus.pull(name, "c", 2, 1.0)
    assert [d.payload for d in first] == [b"0", b"1"]
    assert bus.depth(name) == 3
    rest = await drain(bus, name, 3)
    assert [d.payload for d in rest] == [b"2", b"3", b"4"]
    assert bus.depth(name) == 0
    for delivery in first + rest:
        await bus.ack(delivery)


async def test_pull_on_an_empty_topic_waits_about_the_timeout(bus: EventBus) -> None:
    started = time.monotonic()
    assert await bus.pull(topic(), "c", 10, 0.3) == []
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 5.0


async def test_a_waiting_pull_wakes_on_publish(bus: EventBus) -> None:
    name = topic()
    waiting = asyncio.create_task(bus.pull(name, "c", 1, 10.0))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await bus.publish(name, b"wake")
    got = await asyncio.wait_for(waiting, 5.0)
    assert [d.payload for d in got] == [b"wake"]
    assert time.monotonic() - started < 5.0
    await bus.ack(got[0])


async def test_topics_are_isolated(bus: EventBus) -> None:
    a, b = topic(), topic()
    await bus.publish(a, b"for a")
    assert await bus.pull(b, "c", 10, 0.1) == []
    got = await drain(bus, a, 1)
    assert [d.payload for d in got] == [b"for a"]
    await bus.ack(got[0])


async def test_an_acknowledged_message_is_not_delivered_again(bus: EventBus) -> None:
    name = topic()
    await bus.publish(name, b"once")
    [delivery] = await drain(bus, name, 1)
    await bus.ack(delivery)
    assert await bus.pull(name, "c", 10, 0.2) == []


async def test_concurrent_producers_and_consumers_lose_and_duplicate_nothing(
    bus: EventBus,
) -> None:
    name = topic()
    sent = [f"m{i}".encode() for i in range(400)]
    received: list[bytes] = []

    async def produce(part: list[bytes]) -> None:
        for payload in part:
            await bus.publish(name, payload)

    async def consume(consumer: str) -> None:
        while len(received) < len(sent):
            for delivery in await bus.pull(name, consumer, 16, 0.05):
                received.append(delivery.payload)
                await bus.ack(delivery)

    consumers = [asyncio.create_task(consume(f"c{i}")) for i in range(3)]
    await asyncio.gather(*(produce(sent[i::4]) for i in range(4)))
    await asyncio.wait_for(asyncio.gather(*consumers), 30.0)
    assert sorted(received) == sorted(sent)


async def test_terminal_and_dlq_topics_carry_messages_like_any_other(bus: EventBus) -> None:
    for name in (TERMINAL_TOPIC, DLQ_TOPIC):
        # drain what earlier tests on a shared broker may have left
        while await bus.pull(name, "collector", 256, 0.05):
            pass
        await bus.publish(name, b"end")
        [delivery] = await drain(bus, name, 1)
        assert delivery.payload == b"end"
        await bus.ack(delivery)


async def test_the_engine_runs_a_pipeline_over_it(
    bus: EventBus, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """Classify (ML off) and package over this bus: every artifact ends as a voxel."""
    settings = make_settings(enable_ml_pipeline=False)
    store = LocalObjectStore(settings.home / "objects")
    files = []
    for i in range(4):
        path = tmp_path / f"f{i}.txt"
        path.write_text(f"file {i}")
        files.append(path)
    stages = [
        ClassifyStage(settings, store, available_stages=["package"]),
        PackageStage(settings, store),
    ]
    events = [ingest(Artifact(name=p.name, path=str(p), source=p.as_uri())) for p in files]
    ends = await run_stages(stages, events, bus=bus, timeout_s=60)
    assert sorted(e.type for e in ends) == [VOXEL_CREATED] * 4
    assert {e.correlationid for e in ends} == {e.id for e in events}
