"""``thunderline doctor`` row of the bus: it answers and its queues exist (a broker is asked)."""

from __future__ import annotations

import asyncio

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC
from thunderline.config import Settings

Row = tuple[str, str, str]


async def _probe(settings: Settings) -> list[Row]:
    from thunderline.bus.factory import open_bus
    from thunderline.worker.runner import WORKER_STAGES

    quick = settings.model_copy(
        update={"bus_reconnect_timeout_s": min(settings.bus_reconnect_timeout_s, 5.0)}
    )
    bus = open_bus(quick)
    try:
        await bus.connect()
        topics = [*WORKER_STAGES[:-1], TERMINAL_TOPIC, DLQ_TOPIC]
        await bus.declare(topics)
        if not bus.durable:  # a fresh in-process bus: nothing waits in it
            return [("bus", "ok", bus.describe())]
        depths = {t: await bus.queue_depth(t) for t in topics}
        shown = ", ".join(f"{t}={n}" for t, n in depths.items())
        return [("bus", "ok", f"{bus.describe()} ready; waiting: {shown}")]
    except Exception as exc:
        return [("bus", "fail", f"{bus.describe()}: {type(exc).__name__}: {exc}")]
    finally:
        await bus.close()


def doctor_report(settings: Settings) -> list[Row]:
    """Readiness of the bus ``TL_BUS_URL`` names (the one a worker would use)."""
    return asyncio.run(_probe(settings))
