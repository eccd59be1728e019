"""``thunderline doctor`` rows of the bus: it answers and its queues exist (a broker is asked).

A queue with messages and no consumer is a ``warn`` row naming the stage no worker serves.
"""

from __future__ import annotations

import asyncio

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC
from thunderline.config import Settings

Row = tuple[str, str, str]


async def _probe(settings: Settings) -> list[Row]:
    from thunderline.bus.factory import open_bus
    from thunderline.bus.served import look, waiting_line
    from thunderline.worker.runner import WORKER_STAGES

    bus_settings = settings.bus.model_copy(
        update={"reconnect_timeout_s": min(settings.bus.reconnect_timeout_s, 5.0)}
    )
    quick = settings.model_copy(update={"bus": bus_settings})
    bus = open_bus(quick)
    try:
        await bus.connect()
        topics = [*WORKER_STAGES[:-1], TERMINAL_TOPIC, DLQ_TOPIC]
        await bus.declare(topics)
        if not bus.durable:  # a fresh in-process bus: nothing waits in it
            return [("bus", "ok", bus.describe())]
        depths = {t: await bus.queue_depth(t) for t in topics}
        shown = ", ".join(f"{t}={n}" for t, n in depths.items())
        rows = [("bus", "ok", f"{bus.describe()} ready; waiting: {shown}")]
        # a queue with messages and no consumer: no worker serves that stage (issue 23)
        for stats in await look(bus, topics):
            if stats.unserved:
                rows.append(("bus " + stats.topic, "warn", waiting_line(stats)))
        return rows
    except Exception as exc:
        return [("bus", "fail", f"{bus.describe()}: {type(exc).__name__}: {exc}")]
    finally:
        await bus.close()


def doctor_report(settings: Settings) -> list[Row]:
    """Readiness of the bus ``TL_BUS_URL`` names (the one a worker would use)."""
    return asyncio.run(_probe(settings))
