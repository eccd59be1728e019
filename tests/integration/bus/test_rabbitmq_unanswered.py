"""A broker that accepts connections and then answers nothing is an error, never a hang.

RabbitMQ out of file handles does exactly this (CI hung on it for an hour): the TCP connection
stays open and no frame comes back. A loopback proxy the test owns plays that broker by holding
every byte (``freeze``) while the real server stays untouched.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.integration.scale.proxy import TcpProxy

from thunderline.bus.rabbitmq import RabbitMQBus
from thunderline.errors import BackendError
from thunderline.obs import metrics

OP_TIMEOUT_S = 1.0


async def test_a_silent_broker_fails_every_call_in_bounded_time_and_close_returns(
    rabbitmq_url: str, bus_prefix: str
) -> None:
    with TcpProxy.for_url(rabbitmq_url) as proxy:
        bus = RabbitMQBus(
            proxy.via(rabbitmq_url),
            prefix=bus_prefix,
            op_timeout_s=OP_TIMEOUT_S,
            reconnect_timeout_s=3.0,
        )
        try:
            await bus.publish("classify", b"before")  # a serving broker: all is well
            got = await bus.pull("classify", "t", 1, 5.0)
            assert [d.payload for d in got] == [b"before"]
            unanswered = metrics.BUS_UNANSWERED._value.get()
            proxy.freeze()

            started = time.monotonic()
            with pytest.raises(
                BackendError, match=r"did not answer (opening a channel|declaring queue)"
            ):
                await bus.queue_stats("nlp")
            assert time.monotonic() - started < OP_TIMEOUT_S + 5

            started = time.monotonic()
            with pytest.raises(BackendError, match="RabbitMQ unavailable for 3s"):
                await bus.publish("classify", b"during")  # no confirm: resent, then given up
            assert time.monotonic() - started < 3.0 + 2 * OP_TIMEOUT_S + 5
            assert metrics.BUS_UNANSWERED._value.get() > unanswered

            await bus.prepare_for_draining()  # the cancel is not confirmed: given up, no hang
        finally:
            started = time.monotonic()
            await bus.close()
            closed_in = time.monotonic() - started
            proxy.thaw()
    assert closed_in < OP_TIMEOUT_S + 5


async def test_connecting_to_a_broker_that_never_answers_is_a_backend_error(
    rabbitmq_url: str, bus_prefix: str
) -> None:
    with TcpProxy.for_url(rabbitmq_url) as proxy:
        proxy.freeze()  # the TCP connection is accepted; the AMQP handshake never comes back
        bus = RabbitMQBus(
            proxy.via(rabbitmq_url),
            prefix=bus_prefix,
            op_timeout_s=OP_TIMEOUT_S,
            reconnect_timeout_s=2.0,
        )
        started = time.monotonic()
        try:
            with pytest.raises(BackendError, match="RabbitMQ not reachable"):
                await asyncio.wait_for(bus.connect(), 30)
        finally:
            await bus.close()
            proxy.thaw()
        assert time.monotonic() - started < 2.0 + 2 * OP_TIMEOUT_S + 10
