"""A shutdown step that hangs is abandoned after its limit, and the log says where it stood."""

from __future__ import annotations

import asyncio
import logging

import pytest

from thunderline.worker.runner import bounded_step


async def _never_replies(started: asyncio.Event) -> None:
    started.set()
    await asyncio.Event().wait()  # a broker reply that never comes


async def test_a_hung_step_is_abandoned_with_the_pending_stacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = asyncio.Event()
    bystander = asyncio.create_task(_never_replies(asyncio.Event()), name="consumer-loop")
    caplog.set_level(logging.ERROR, logger="thunderline.worker")
    finished = await bounded_step(_never_replies(started), 0.2, "bus close")
    bystander.cancel()
    assert finished is False and started.is_set()
    [record] = [r for r in caplog.records if "did not finish" in r.getMessage()]
    assert "bus close" in record.getMessage()
    assert "consumer-loop: " in record.getMessage() and "_never_replies" in record.getMessage()


async def test_a_step_that_finishes_in_time_is_awaited_to_its_end() -> None:
    done: list[int] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        done.append(1)

    assert await bounded_step(quick(), 5.0, "pipeline stop") is True
    assert done == [1]


async def test_a_step_that_ignores_its_cancellation_does_not_hold_the_shutdown() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # swallows every cancellation, as a misbehaving library task can

    finished = await asyncio.wait_for(bounded_step(stubborn(), 0.2, "bus close"), 10.0)
    assert finished is False
    release.set()  # let the abandoned step end so the loop closes cleanly
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()
            await asyncio.sleep(0)


async def test_a_step_that_fails_in_time_raises_its_error() -> None:
    async def broken() -> None:
        raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError, match="broker gone"):
        await bounded_step(broken(), 5.0, "bus close")
