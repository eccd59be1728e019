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
from collections.abc import Coroutine, Sequence
from typing import Any

from thunderline.bus.base import DLQ_TOPIC, TERMINAL_TOPIC
from thunderline.bus.factory import open_bus
from thunderline.bus.served import WATCHED_TOPICS, QueueSampler
from thunderline.config import Settings
from thunderline.errors import ConfigError
from thunderline.flow.collector import COLLECT_STAGE
from thunderline.flow.engine import Pipeline
from thunderline.objects.factory import open_object_store
from thunderline.obs.heap import freeze_after_startup
from thunderline.runtime import WIRING, build_stages, enabled_stage_names

_log = logging.getLogger("thunderline.worker")

#: Seconds a shutdown step may run past its own bounds before it is abandoned.
_SHUTDOWN_MARGIN_S = 20.0


async def bounded_step(step: Coroutine[Any, Any, None], limit_s: float, what: str) -> bool:
    """Await one shutdown step for at most ``limit_s`` seconds.

    A step that overruns is cancelled and logged as an ERROR with the stack of every task
    still pending, so that a shutdown which would have hung (a broker reply that never comes,
    a task that ignores its cancellation) ends and says where it stood. Unacknowledged
    messages go back to their queues when the connection closes, so nothing is lost.

    Returns:
        True when the step finished in time.
    """
    # asyncio.wait, not wait_for: wait_for awaits the cancelled step, which hangs on a step
    # that ignores its cancellation; here the overrun is cancelled and left behind
    step_task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({step_task}, timeout=limit_s)
    if step_task in done:
        step_task.result()  # a step that failed raises here, as it would when awaited
        return True
    current = asyncio.current_task()
    stacks = []
    for task in asyncio.all_tasks():
        if task is current or task.done():
            continue
        frames = task.get_stack(limit=8)
        where = " <- ".join(
            f"{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno} {f.f_code.co_name}"
            for f in reversed(frames)
        )
        stacks.append(f"{task.get_name()}: {where}")
    _log.error(
        "shutdown: %s did not finish in %.0fs; abandoned. Pending tasks:\n%s",
        what,
        limit_s,
        "\n".join(stacks) or "(none)",
    )
    step_task.cancel()
    return False


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
            malloc_trim_mb=settings.malloc_trim_mb,
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
        this worker runs it, gets an :class:`OutcomeStore` that also records reprocess results
        (:class:`~thunderline.sources.reprocess_bus.ReprocessOutcomes`). Then the pipeline starts serving, the
        queue sampler starts and :attr:`ready` is set.
        """
        await self.bus.declare([*WORKER_STAGES[:-1], TERMINAL_TOPIC, DLQ_TOPIC])
        if self.pipeline.run_collector:
            # it also records reprocess results (a marked terminal event: a result version)
            from thunderline.sources.reprocess_bus import ReprocessOutcomes

            self.pipeline.outcomes = await asyncio.to_thread(
                ReprocessOutcomes, self.settings, self.store
            )
        await self.pipeline.start()
        freeze_after_startup()  # the stages' models are loaded: out of the collector's walk
        self.sampler.start()
        self.ready.set()

    async def shutdown(self) -> None:
        """Stop pulling, finish what is held (bounded), then close (the rest is redelivered)."""
        started = time.monotonic()
        await self.sampler.stop()
        # the pipeline's own drain is bounded by TL_SHUTDOWN_TIMEOUT_S, then 10 s for the
        # collector; past both (and a margin) the broker gets the rest back when we close
        limit = self.settings.shutdown_timeout_s + 10.0 + _SHUTDOWN_MARGIN_S
        try:
            await bounded_step(self.pipeline.stop(drain=True), limit, "pipeline stop")
        finally:
            await bounded_step(self.bus.close(), _SHUTDOWN_MARGIN_S, "bus close")
            if self.pipeline.outcomes is not None:
                self.pipeline.outcomes.close()
        _log.warning("worker %s stopped after %.1fs", self.name, time.monotonic() - started)
