"""A stateless worker: the pipeline engine running some stages over the shared RabbitMQ bus.

``thunderline worker --stages classify,nlp,infer,package`` builds only the named stages (the
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
from thunderline.bus.rabbitmq import RabbitMQBus
from thunderline.classify.stage import ClassifyStage
from thunderline.config import Settings
from thunderline.errors import ConfigError, PathEscapeError
from thunderline.events import CloudEvent
from thunderline.flow.engine import Pipeline
from thunderline.flow.stage import Outcome, Stage
from thunderline.objects.base import ObjectStore
from thunderline.objects.factory import open_object_store
from thunderline.outcomes import OutcomeStore
from thunderline.runtime import WIRING, enabled_stage_names
from thunderline.worker.collector import COLLECT_STAGE, Collector

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


class StoredClassifyStage(ClassifyStage):
    """Classify for workers: only artifacts already in the shared store (``payload_ref``).

    A worker must never read its own filesystem because an event names a path: local files
    are admitted by the submitter. A path-only artifact is dead-lettered (``path_escape``).
    """

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(events)
        stored: list[tuple[int, CloudEvent]] = []
        for i, event in enumerate(events):
            artifact = event.data.get("artifact")
            if isinstance(artifact, dict) and not artifact.get("payload_ref"):
                outcomes[i] = PathEscapeError(
                    "a worker classifies stored payloads only (payload_ref); the submitter "
                    "admits local files",
                    details={"path": artifact.get("path")},
                )
            else:
                stored.append((i, event))
        if stored:
            done = await super().handle_batch([event for _, event in stored])
            for (i, _), outcome in zip(stored, done, strict=True):
                outcomes[i] = outcome
        return [o if o is not None else RuntimeError("no outcome") for o in outcomes]


def build_worker_stages(
    settings: Settings, store: ObjectStore, names: Sequence[str], concurrency: int | None = None
) -> list[Stage]:
    """The named stages (not ``collect``), with ``concurrency`` overriding each stage's own."""
    enabled = enabled_stage_names(settings)
    specs = {spec.name: spec for spec in WIRING}
    stages: list[Stage] = []
    for name in names:
        if name == COLLECT_STAGE:
            continue
        if name not in enabled:
            raise ConfigError(
                f"stage {name!r} is switched off by the settings ({specs[name].when})"
            )
        if name == "classify":
            stage: Stage = StoredClassifyStage(settings, store, available_stages=enabled[1:])
        else:
            stage = specs[name].cls(settings, store)
        if concurrency is not None:
            stage.options = stage.options.model_copy(update={"concurrency": concurrency})
        stages.append(stage)
    return stages


class Worker:
    """Stages and/or the collector over the RabbitMQ bus, until stopped."""

    def __init__(
        self, settings: Settings, stage_names: Sequence[str], *, concurrency: int | None = None
    ) -> None:
        if not settings.bus.url.startswith(("amqp://", "amqps://")):
            raise ConfigError(
                f"a worker needs the shared RabbitMQ bus (TL_BUS_URL=amqp://…), not {settings.bus.url!r}"
            )
        self.settings = settings
        self.stage_names = list(stage_names)
        self.store = open_object_store(settings)
        self.stages = build_worker_stages(settings, self.store, self.stage_names, concurrency)
        bus = open_bus(settings)
        assert isinstance(bus, RabbitMQBus)
        self.bus = bus
        self.pipeline = Pipeline(
            bus,
            self.stages,
            max_demand=settings.max_demand,
            shutdown_timeout_s=settings.shutdown_timeout_s,
            run_collector=False,
        )
        self.outcomes: OutcomeStore | None = None
        self.collector: Collector | None = None
        self._collector_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def request_stop(self) -> None:
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
        topics = [s.name for s in self.stages]
        if COLLECT_STAGE in self.stage_names:
            topics += [TERMINAL_TOPIC, DLQ_TOPIC]
        await self.bus.declare_all(list(dict.fromkeys([*topics, *WORKER_STAGES[:-1]])))
        await self.pipeline.start()
        if COLLECT_STAGE in self.stage_names:
            self.outcomes = await asyncio.to_thread(OutcomeStore, self.settings)
            self.collector = Collector(self.bus, self.outcomes)
            self._collector_task = asyncio.create_task(self.collector.run(), name="collector")
        self.ready.set()

    async def shutdown(self) -> None:
        """Stop pulling, finish what is held (bounded), then close (the rest is redelivered)."""
        started = time.monotonic()
        await self.bus.stop_consuming()
        deadline = started + self.settings.shutdown_timeout_s
        while self.bus.held and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.bus.held:
            _log.warning(
                "shutdown: %d messages unfinished after %.0fs go back to their queues",
                self.bus.held,
                self.settings.shutdown_timeout_s,
            )
        if self.collector is not None:
            self.collector.stop()
        if self._collector_task is not None:
            self._collector_task.cancel()
            await asyncio.gather(self._collector_task, return_exceptions=True)
        await self.pipeline.stop(drain=False)
        await self.bus.close()
        if self.outcomes is not None:
            self.outcomes.close()
        _log.warning("worker %s stopped after %.1fs", self.name, time.monotonic() - started)
