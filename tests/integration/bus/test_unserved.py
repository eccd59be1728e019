"""A queue nobody consumes, against the real broker: the publisher warns at once and counts,
a waiting submitter reports it and gives up after its timeout (issue 23)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from thunderline.bus import served
from thunderline.bus.rabbitmq import RabbitMQBus
from thunderline.bus.served import UnservedWatch
from thunderline.errors import UnservedStageError
from thunderline.events import INGEST_RECEIVED, new_event
from thunderline.obs import metrics

BusFactory = Callable[..., RabbitMQBus]


@pytest.fixture
async def make_bus(rabbitmq_url: str, bus_prefix: str) -> AsyncIterator[BusFactory]:
    opened: list[RabbitMQBus] = []

    def factory(**kwargs: Any) -> RabbitMQBus:
        bus = RabbitMQBus(rabbitmq_url, prefix=bus_prefix, **kwargs)
        opened.append(bus)
        return bus

    yield factory
    for bus in opened:
        await bus.close()


def _payload() -> bytes:
    return new_event(INGEST_RECEIVED, {"artifact": {"name": "a"}, "route": ["nlp"]}).to_bytes()


def _unserved_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "has no consumer" in r.getMessage()
    ]


async def test_a_publish_to_a_queue_without_consumer_warns_at_once_and_counts(
    make_bus: BusFactory,
    bus_prefix: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher, worker = make_bus(), make_bus(prefetch=5)
    before = metrics.sample("thunderline_bus_unserved_publishes_total", {"topic": "nlp"})
    with caplog.at_level(logging.WARNING, logger="thunderline"):
        await publisher.publish("nlp", _payload())
        lines = _unserved_lines(caplog)
        # at once: the first publish to the unserved queue is the one that warns
        assert len(lines) == 1, lines
        assert f"queue {bus_prefix}.nlp" in lines[0]
        assert "no worker serves stage nlp" in lines[0]
        assert "thunderline worker --stages nlp" in lines[0]
        await publisher.publish("nlp", _payload())  # counted, not logged again within a minute
        assert len(_unserved_lines(caplog)) == 1
    after = metrics.sample("thunderline_bus_unserved_publishes_total", {"topic": "nlp"})
    assert after - before == 2

    stats = await publisher.queue_stats("nlp")
    assert (stats.queue, stats.messages, stats.consumers, stats.unserved) == (
        f"{bus_prefix}.nlp",
        2,
        0,
        True,
    )
    # a worker starts consuming: the broker counts its consumer, and publishing is quiet again
    got = await worker.pull("nlp", "w", 2, 5.0)
    assert len(got) == 2
    served_now = await publisher.queue_stats("nlp")
    assert served_now.consumers == 1 and not served_now.unserved
    monkeypatch.setattr(served, "SERVED_CHECK_S", 0.0)  # ask the broker on every publish
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="thunderline"):
        await publisher.publish("nlp", _payload())
    assert _unserved_lines(caplog) == []
    final = metrics.sample("thunderline_bus_unserved_publishes_total", {"topic": "nlp"})
    assert final == after
    for delivery in got:
        await worker.ack(delivery)


async def test_a_queue_that_does_not_exist_has_no_messages_and_no_consumer(
    make_bus: BusFactory,
) -> None:
    bus = make_bus()
    await bus.connect()
    stats = await bus.queue_stats("never-declared")
    assert (stats.messages, stats.consumers, stats.unserved) == (0, 0, False)


async def test_the_watch_reports_an_unserved_stage_and_gives_up_after_its_timeout(
    make_bus: BusFactory,
    bus_prefix: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(served, "WATCH_PROBE_S", 0.0)
    bus = make_bus()
    for _ in range(3):
        await bus.publish("nlp", _payload())
    await bus.declare(["package"])  # empty and unconsumed: not something to wait for

    patient = UnservedWatch(bus, ["classify", "nlp", "package"], timeout_s=0)
    with caplog.at_level(logging.WARNING, logger="thunderline"):
        found = await patient.check(progress_at=time.monotonic() - 3600)
    assert [s.topic for s in found] == ["nlp"]
    assert patient.lines == [
        f"waiting for stage nlp: no worker serves it (3 messages in queue {bus_prefix}.nlp; "
        "start `thunderline worker --stages nlp`)"
    ]
    assert any(patient.lines[0] == r.getMessage() for r in caplog.records)
    await patient.check(progress_at=0.0)  # 0: never gives up; reported again only after 30 s
    assert len(patient.lines) == 1
    assert metrics.sample("thunderline_bus_queue_consumers", {"topic": "nlp"}) == 0
    assert metrics.sample("thunderline_bus_queue_messages", {"topic": "nlp"}) == 3

    bounded = UnservedWatch(bus, ["nlp"], timeout_s=0.3)
    await bounded.check(progress_at=time.monotonic())  # first sighting: the clock starts
    time.sleep(0.4)
    # artifacts still finish (recent progress): other work stuck there does not stop this one
    await bounded.check(progress_at=time.monotonic())
    with pytest.raises(UnservedStageError) as caught:
        await bounded.check(progress_at=time.monotonic() - 1.0)
    error = caught.value
    assert error.reason == "unserved"
    assert error.details["stage"] == "nlp" and error.details["queue"] == f"{bus_prefix}.nlp"
    assert error.details["messages"] == 3
    assert "TL_BUS_UNSERVED_TIMEOUT_S" in str(error) and "no worker serves it" in str(error)
