"""``thunderline doctor`` rows of the scale-out mode: the broker answers and the queues exist."""

from __future__ import annotations

import asyncio

from thunderline.config import Settings

Row = tuple[str, str, str]


async def _probe(settings: Settings) -> list[Row]:
    from thunderline.bus.factory import open_bus
    from thunderline.bus.rabbitmq import RabbitMQBus
    from thunderline.worker.runner import WORKER_STAGES

    bus = open_bus(settings)
    assert isinstance(bus, RabbitMQBus)
    bus.reconnect_timeout_s = min(bus.reconnect_timeout_s, 5.0)
    rows: list[Row] = []
    try:
        await bus.connect()
        topics = [*WORKER_STAGES[:-1], "terminal", "dlq"]
        await bus.declare_all(topics)
        depths = {t: await bus.queue_depth(t) for t in topics}
        shown = ", ".join(f"{t}={n}" for t, n in depths.items())
        rows.append(("rabbitmq", "ok", f"{bus.safe_url} ready; waiting: {shown}"))
    except Exception as exc:
        rows.append(("rabbitmq", "fail", f"{type(exc).__name__}: {exc}"))
    finally:
        await bus.close()
    return rows


def doctor_report(settings: Settings) -> list[Row]:
    """Readiness of a worker: only when ``TL_BUS_URL`` names RabbitMQ."""
    if not settings.bus.url.startswith(("amqp://", "amqps://")):
        return [("bus", "ok", "in-process (memory://)")]
    return asyncio.run(_probe(settings))
