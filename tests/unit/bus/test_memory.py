"""The in-process bus's own behaviour (the shared contract is in tests/integration/contracts):
bounded queues, the two overflow policies, never dropping terminal/DLQ records, unacked count."""

from __future__ import annotations

import asyncio

import pytest

from thunderline.bus import DLQ_TOPIC, TERMINAL_TOPIC, MemoryBus
from thunderline.config import OverflowPolicy
from thunderline.errors import OverloadError


async def test_drop_oldest_hands_the_dropped_message_to_on_drop() -> None:
    dropped: list[tuple[str, bytes]] = []

    async def on_drop(topic: str, payload: bytes) -> None:
        dropped.append((topic, payload))

    bus = MemoryBus(maxsize=2, overflow=OverflowPolicy.DROP_OLDEST, on_drop=on_drop)
    for i in range(4):
        await bus.publish("t", str(i).encode())
    assert dropped == [("t", b"0"), ("t", b"1")]
    assert [d.payload for d in await bus.pull("t", "c", 10, 0.1)] == [b"2", b"3"]


async def test_block_makes_the_publisher_wait_until_a_pull_frees_a_slot() -> None:
    bus = MemoryBus(maxsize=1, overflow=OverflowPolicy.BLOCK)
    await bus.publish("t", b"1")
    blocked = asyncio.create_task(bus.publish("t", b"2"))
    await asyncio.sleep(0.05)
    assert not blocked.done() and bus.depth("t") == 1
    await bus.pull("t", "c", 1, 0.1)
    await asyncio.wait_for(blocked, 1)
    assert bus.depth("t") == 1


@pytest.mark.parametrize("topic", [DLQ_TOPIC, TERMINAL_TOPIC])
async def test_terminal_and_dlq_are_unbounded(topic: str) -> None:
    dropped: list[bytes] = []

    async def on_drop(t: str, payload: bytes) -> None:
        dropped.append(payload)

    bus = MemoryBus(maxsize=1, overflow=OverflowPolicy.DROP_OLDEST, on_drop=on_drop)
    for i in range(5):
        await bus.publish(topic, str(i).encode())
    assert bus.depth(topic) == 5 and not dropped


async def test_unacked_counts_pulled_messages_until_acked() -> None:
    bus = MemoryBus()
    await bus.publish("t", b"a")
    await bus.publish("t", b"b")
    got = await bus.pull("t", "c", 2, 0.1)
    assert bus.unacked("t") == 2 and bus.depth("t") == 0
    await bus.ack(got[0])
    assert bus.unacked("t") == 1 and got[0].acked and not got[1].acked
    assert bus.durable is False


async def test_a_full_queue_refuses_a_publish_that_must_not_wait() -> None:
    bus = MemoryBus(maxsize=1, overflow=OverflowPolicy.BLOCK)
    await bus.publish("t", b"1")
    with pytest.raises(OverloadError) as caught:
        await bus.publish("t", b"2", block=False)
    assert caught.value.details == {"topic": "t"}
    assert bus.depth("t") == 1  # nothing was added
    await bus.publish(DLQ_TOPIC, b"d", block=False)  # the DLQ is never full


async def test_an_unbounded_publish_neither_waits_nor_refuses_on_a_full_queue() -> None:
    """A stage's output going back up the route (``bounded=False``) passes the bound; the
    bound then holds back bounded publishers until the queue is below it again."""
    bus = MemoryBus(maxsize=1, overflow=OverflowPolicy.BLOCK)
    await bus.publish("t", b"1")
    await asyncio.wait_for(bus.publish("t", b"2", bounded=False), 1)
    await asyncio.wait_for(bus.publish("t", b"3", block=False, bounded=False), 1)
    assert bus.depth("t") == 3
    blocked = asyncio.create_task(bus.publish("t", b"4"))
    await bus.pull("t", "c", 1, 0.1)
    await asyncio.sleep(0.05)
    assert not blocked.done()  # 2 still waiting: above the bound of 1
    await bus.pull("t", "c", 2, 0.1)
    await asyncio.wait_for(blocked, 1)
    assert [d.payload for d in await bus.pull("t", "c", 10, 0.1)] == [b"4"]


async def test_drop_oldest_never_drops_an_unbounded_message() -> None:
    """A bounded publish drops the oldest bounded message, else itself: never a re-entered one."""
    dropped: list[bytes] = []

    async def on_drop(topic: str, payload: bytes) -> None:
        dropped.append(payload)

    bus = MemoryBus(maxsize=2, overflow=OverflowPolicy.DROP_OLDEST, on_drop=on_drop)
    await bus.publish("t", b"child-1", bounded=False)
    await bus.publish("t", b"a")
    await bus.publish("t", b"child-2", bounded=False)
    await bus.publish("t", b"b")  # full (3 >= 2): drops "a", the oldest bounded one
    assert dropped == [b"a"]
    await bus.publish("t", b"c")  # drops "b"
    await bus.pull("t", "c", 1, 0.1)  # takes child-1
    await bus.publish("t", b"d")  # still full (child-2, c): drops c
    assert dropped == [b"a", b"b", b"c"]
    assert [d.payload for d in await bus.pull("t", "c", 10, 0.1)] == [b"child-2", b"d"]
    await bus.publish("t", b"child-3", bounded=False)
    await bus.publish("t", b"child-4", bounded=False)
    await bus.publish("t", b"e")  # only unbounded messages wait: the new one is dropped
    assert dropped[-1] == b"e"
    assert [d.payload for d in await bus.pull("t", "c", 10, 0.1)] == [b"child-3", b"child-4"]
