"""What a broker cut leaves in the log: one clear line per loss and per reconnect from
Thunderline, never a raw aiormq/aio-pika traceback."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from tests.integration.scale.proxy import TcpProxy

from thunderline.bus.rabbitmq import RabbitMQBus
from thunderline.events import INGEST_RECEIVED, new_event


async def test_a_broker_cut_logs_one_line_per_reconnect_and_no_traceback(
    rabbitmq_url: str, bus_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with TcpProxy.for_url(rabbitmq_url) as proxy:
        via_proxy = proxy.via(rabbitmq_url)
        bus = RabbitMQBus(via_proxy, prefix=bus_prefix, prefetch=10)
        try:
            event = new_event(INGEST_RECEIVED, {"artifact": {"name": "a"}, "route": ["classify"]})
            await bus.publish("classify", event.to_bytes())
            assert await bus.pull("classify", "t", 1, 2.0)
            with caplog.at_level(logging.INFO):
                for _ in range(2):  # two cuts: two losses, two reconnects
                    cutter = threading.Thread(target=proxy.cut_for, args=(1.5,))
                    cutter.start()
                    await asyncio.sleep(0.3)
                    await bus.publish("classify", event.to_bytes())  # waits for the reconnect
                    cutter.join()
                    await asyncio.sleep(0.5)
            reconnects = bus.reconnects
        finally:
            await bus.close()
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    noisy = [r for r in records if r.exc_info or not r.name.startswith("thunderline")]
    assert not noisy, [(r.name, str(r.msg)[:200]) for r in noisy]
    restored = [r for r in records if "connection restored" in r.getMessage()]
    lost = [r for r in records if "connection lost" in r.getMessage()]
    assert reconnects == 2 and len(restored) == 2, [r.getMessage() for r in records]
    assert len(lost) == 2, [r.getMessage() for r in records]
