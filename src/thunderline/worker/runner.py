"""A stateless worker: the pipeline engine running some stages over a shared, durable bus.

``thunderline worker --stages classify,extract,nlp,infer,package`` builds only the named stages (the
routes still use every stage the settings enable, wherever it runs) and consumes their queues;
``collect`` adds the collector. Nothing lives on the worker's disk: payloads are in the shared
object store, voxels and outcomes in the shared database, messages in the broker.

On SIGTERM / SIGINT the worker stops pulling (the broker's consumers are cancelled), finishes
what it holds, acknowledging each message after its output is confirmed, and exits 0; whatever
is still unfinished after ``TL_SHUTDOWN_TIMEOUT_S`` goes back to its queue when the connection
closes (the broker redelivers it to another worker).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Sequence

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC
from thunderline.bus.factory import open_bus
from thunderline.bus.served import WATCHED_TOPICS, QueueSampler
from thunderline.config import Settings
from thunderline.errors import ConfigError
from thunderline.flow.collector import COLLECT_STAGE
from thunderline.flow.engine import Pipeline
from thunderline.objects.factory import open_object_store
from thunderline.outcomes import OutcomeStore
from thunderline.runtime import WIRING, build_stages, enabled_stage_names

_log = logging.getLogger("thunderline.worker")

#: Every stage a worker can run, in pipeline order.
WORKER_STAGES = (*(spec.name for spec in WIRING), COLLECT_STAGE)


def parse_stages(spec: str) -> list[str]:
    """``"classify,package"`` → the stage names, checked."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in WORKER_STAGES]
    if not names or unknown:
        raise ConfigError(
            f"unknown stage(s) {', '.join(unknown) or '(none given)'}: "
            f"choose from {', '.join(WORKER_STAGES)}"
        )
    return list(dict.fromkeys(names))


def default_stages(settings: Settings) -> list[str]:
    """Every stage the settings enable, and the collector."""
    return [*enabled_stage_names(settings), COLLECT_STAGE]


class Worker:
    """Stages and/or the collector over a durable, shared bus, until stopped."""

    def __init__(
        self, settings: Settings, stage_names: Sequence[str], *, concurrency: int | None = None
    ) -> None:
        self.settings = settings
        self.stage_names = list(stage_names)
        self.bus = open_bus(settings)
        if not self.bus.durable:
            raise ConfigError(
                "a worker needs a bus other processes feed (TL_BUS_URL=amqp://…), not "
                + self.bus.describe()
            )
        self.store = open_object_store(settings)
        self.stages = build_stages(
            settings, self.store, self.stage_names, concurrency=concurrency, stored_only=True
        )
        self.pipeline = Pipeline(
            self.bus,
            self.stages,
            max_demand=settings.max_demand,
            shutdown_timeout_s=settings.shutdown_timeout_s,
            run_collector=COLLECT_STAGE in self.stage_names,
        )
        # every queue's messages and consumers for Prometheus (ThunderlineStageUnserved)
        self.sampler = QueueSampler(self.bus, WATCHED_TOPICS)
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop serving and shut down (the SIGTERM/SIGINT handler; no wait)."""
        self._stop.set()

    async def run(self) -> None:
        """Start, serve until a stop is requested, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            _log.warning("worker %s ready: stages %s", self.name, ",".join(self.stage_names))
            await self._stop.wait()
        finally:
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def start(self) -> None:
        """Declare the queues, open the outcome store if collecting, start the stages and sampler.

        Every stage queue, the terminal topic and the DLQ are declared first; the collector, when
        this worker runs it, gets an :class:`OutcomeStore`. Then the pipeline starts serving, the
        queue sampler starts and :attr:`ready` is set.
        """
        await self.bus.declare([*WORKER_STAGES[:-1], TERMINAL_TOPIC, DLQ_TOPIC])
        if self.pipeline.run_collector:
            self.pipeline.outcomes = await asyncio.to_thread(OutcomeStore, self.settings)
        await self.pipeline.start()
        self.sampler.start()
        self.ready.set()

    async def shutdown(self) -> None:
        """Stop pulling, finish what is held (bounded), then close (the rest is redelivered)."""
        started = time.monotonic()
        await self.sampler.stop()
        try:
            await self.pipeline.stop(drain=True)
        finally:
            await self.bus.close()
            if self.pipeline.outcomes is not None:
                self.pipeline.outcomes.close()
        _log.warning("worker %s stopped after %.1fs", self.name, time.monotonic() - started)
