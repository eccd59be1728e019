"""Supervised sessions: one worker per model, preload, health probes, restarts with backoff.

Each :class:`ModelWorker` owns one :class:`DynamicBatcher` thread; everything that touches the
model's session (loading, running, probing, restarting) happens in that thread, so no lock is
needed. A session that fails on valid inputs is dropped and reloaded (through the registry, so
the checksum is verified again) with exponential backoff (``restart``, the one
:class:`~thunderline.config.RetryPolicy`); after its ``attempts`` consecutive failures the worker is **unhealthy** and its requests fail fast with
:class:`ModelUnavailableError` (permanent: the engine dead-letters them at once instead of
letting them hang). The periodic health probe (``TL_ONNX_HEALTH_INTERVAL_S``) runs dummy
inputs built from the I/O spec, restarts a failing session, and gives an unhealthy model one
reload attempt per period, so it recovers when the file is fixed.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from thunderline.config import OnnxSettings, RetryPolicy, Settings
from thunderline.errors import ChecksumMismatch, reason_of
from thunderline.ml.batcher import DynamicBatcher
from thunderline.ml.errors import ModelUnavailableError, UntrustedModelError
from thunderline.ml.model import Inputs, OnnxModel
from thunderline.ml.registry import ModelRegistry
from thunderline.ml.tensors import InferenceResult
from thunderline.obs import metrics

_log = logging.getLogger("thunderline.ml")
#: Model (re)loads: 0.1 s doubling to 5 s; unhealthy after 3 failures in a row.
RESTART_POLICY = RetryPolicy(attempts=3, backoff_s=0.1, backoff_max_s=5.0)


class ModelState(StrEnum):
    """Where a worker's session stands."""

    IDLE = "idle"  # not loaded yet (no preload, no request so far)
    HEALTHY = "healthy"
    RESTARTING = "restarting"
    UNHEALTHY = "unhealthy"
    CLOSED = "closed"


@dataclass(frozen=True)
class ModelHealth:
    """A snapshot of one worker (shown by ``thunderline doctor`` and the health checks)."""

    name: str
    state: ModelState
    restarts: int
    failures: int
    last_error: str | None
    probe_ms: float | None
    batch_cap: int | None
    queue_depth: int


class ModelWorker:
    """One supervised model: its session, its batcher thread, its restart policy."""

    def __init__(
        self,
        name: str,
        loader: Callable[[], OnnxModel],
        *,
        max_batch_size: int = 8,
        max_queue_delay_s: float = 0.002,
        restart: RetryPolicy = RESTART_POLICY,
        adaptive: bool = True,
    ) -> None:
        self.name = name
        self._loader = loader
        self.restart = restart
        self.max_failures = restart.attempts or sys.maxsize  # None: never given up
        self.state = ModelState.IDLE
        self.restarts = 0
        self.failures = 0
        self.last_error: str | None = None
        self.probe_ms: float | None = None
        self._model: OnnxModel | None = None
        self._stop = threading.Event()
        self.batcher = DynamicBatcher(
            self._current,
            max_batch_size=max_batch_size,
            max_queue_delay_s=max_queue_delay_s,
            name=name,
            on_error=self._session_failed,
            on_success=self._succeeded,
            adaptive=adaptive,
        )

    # ---- called from any thread ---------------------------------------------------------
    def start(self, timeout: float | None = 120.0) -> ModelHealth:
        """Load now (preload) and wait; a failure leaves the worker restarting/unhealthy."""
        try:
            self.batcher.call(self._current).result(timeout)
        except Exception as exc:
            _log.error("model %s failed to preload: %s", self.name, exc)
        return self.health()

    def submit(
        self, inputs: Inputs, *, correlation_id: str | None = None
    ) -> Future[InferenceResult]:
        """Queue one request for the model's batcher."""
        return self.batcher.submit(inputs, correlation_id=correlation_id)

    def check_health(self, timeout: float | None = 60.0) -> ModelHealth:
        """Run the health probe in the worker thread and wait for it."""
        try:
            self.batcher.call(self._health_check).result(timeout)
        except Exception as exc:
            _log.warning("health check of %s failed: %s", self.name, exc)
        return self.health()

    def health(self) -> ModelHealth:
        """The model's state, restarts and failures."""
        return ModelHealth(
            name=self.name,
            state=self.state,
            restarts=self.restarts,
            failures=self.failures,
            last_error=self.last_error,
            probe_ms=self.probe_ms,
            batch_cap=self.batcher.batch_cap,
            queue_depth=self.batcher.queue_depth,
        )

    def close(self) -> None:
        """Stop the thread (after queued requests) and release the session."""
        self._stop.set()
        self.batcher.close()
        if self._model is not None:
            self._model.close()
            self._model = None
        self.state = ModelState.CLOSED
        metrics.ONNX_MODEL_HEALTHY.labels(self.name).set(0)

    # ---- worker thread only -------------------------------------------------------------
    def _current(self) -> OnnxModel:
        if self._model is not None:
            return self._model
        if self.state is ModelState.UNHEALTHY:
            raise ModelUnavailableError(
                f"model {self.name} is unhealthy after {self.failures} failures "
                f"(last: {self.last_error}); requests fail fast until a probe succeeds",
                details={"model": self.name, "last_error": self.last_error},
            )
        return self._restart()

    def _load_once(self) -> OnnxModel:
        model = self._loader()
        try:
            self.probe_ms = round(model.probe() * 1000, 3)
            if model.spec.dynamic_batch:  # size ONNX Runtime's arena for every batch shape now,
                for size in self.batcher.policy.preferred:  # not in the middle of serving
                    model.run_checked(model.spec.dummy_inputs(size))
        except BaseException:
            model.close()
            raise
        return model

    def _restart(self) -> OnnxModel:
        while not self._stop.is_set():
            first_load = self.state is ModelState.IDLE
            if not first_load:
                self.restarts += 1
                metrics.ONNX_SESSION_RESTARTS.labels(self.name).inc()
            try:
                model = self._load_once()
            except Exception as exc:
                self._record_failure(exc)
                # a security refusal will not change by retrying: unhealthy at once
                refused = isinstance(exc, ChecksumMismatch | UntrustedModelError)
                if refused or self.failures >= self.max_failures:
                    self.state = ModelState.UNHEALTHY
                    _log.error(
                        "model %s is unhealthy after %d failures: %s",
                        self.name,
                        self.failures,
                        exc,
                    )
                    raise ModelUnavailableError(
                        f"model {self.name} is unhealthy after {self.failures} failures: {exc}",
                        details={"model": self.name, "last_error": self.last_error},
                    ) from exc
                self.state = ModelState.RESTARTING
                delay = self.restart.delay(self.failures)
                _log.warning(
                    "model %s failed to load (%s); retrying in %.2fs", self.name, exc, delay
                )
                self._stop.wait(delay)
                continue
            self._model = model
            self.state = ModelState.HEALTHY
            metrics.ONNX_MODEL_HEALTHY.labels(self.name).set(1)
            if not first_load:
                _log.warning("model %s restarted (restart %d)", self.name, self.restarts)
            return model
        raise ModelUnavailableError(f"model {self.name} is shutting down")

    def _record_failure(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{reason_of(exc)}: {exc}"
        metrics.ONNX_MODEL_HEALTHY.labels(self.name).set(0)

    def _session_failed(self, exc: BaseException) -> None:
        """The session failed on valid inputs: drop it; the next request reloads it."""
        _log.warning("model %s session failed: %s", self.name, exc)
        self._record_failure(exc)
        if self._model is not None:
            self._model.close()
            self._model = None
        if self.failures >= self.max_failures:
            self.state = ModelState.UNHEALTHY
            _log.error("model %s is unhealthy after %d failures", self.name, self.failures)
        else:
            self.state = ModelState.RESTARTING

    def _succeeded(self) -> None:
        self.failures = 0

    def _health_check(self) -> None:
        if self.state is ModelState.IDLE:
            return
        if self.state is ModelState.UNHEALTHY:
            try:  # one recovery attempt per period
                self._model = self._load_once()
            except Exception as exc:
                self.last_error = f"{reason_of(exc)}: {exc}"
                return
            self.restarts += 1
            metrics.ONNX_SESSION_RESTARTS.labels(self.name).inc()
            self.failures = 0
            self.state = ModelState.HEALTHY
            metrics.ONNX_MODEL_HEALTHY.labels(self.name).set(1)
            _log.warning("model %s recovered", self.name)
            return
        model = self._current()
        try:
            self.probe_ms = round(model.probe() * 1000, 3)
            if model.spec.dynamic_batch:  # size ONNX Runtime's arena for every batch shape now,
                for size in self.batcher.policy.preferred:  # not in the middle of serving
                    model.run_checked(model.spec.dummy_inputs(size))
        except Exception as exc:
            self._session_failed(exc)
            if self._model is None and self.failures < self.max_failures:
                self._current()  # restart now, with backoff
            return
        self.failures = 0


class ModelSupervisor:
    """One :class:`ModelWorker` per model: preload, periodic probes, clean shutdown."""

    def __init__(
        self,
        registry: ModelRegistry,
        onnx: OnnxSettings | None = None,
        *,
        loader: Callable[[str], OnnxModel] | None = None,
        restart: RetryPolicy = RESTART_POLICY,
        adaptive: bool = True,
    ) -> None:
        self.registry = registry
        self.onnx = onnx or OnnxSettings()
        self._loader = loader or registry.get_model
        self.restart = restart
        self.adaptive = adaptive
        self._workers: dict[str, ModelWorker] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, registry: ModelRegistry | None = None, **kwargs: Any
    ) -> ModelSupervisor:
        """The supervisor of the settings' registry, run as ``TL_ONNX_*`` says."""
        return cls(registry or ModelRegistry.from_settings(settings), settings.onnx, **kwargs)

    def worker(self, name: str) -> ModelWorker:
        """The worker of model ``name`` (created on first use; unknown names raise)."""
        with self._lock:
            worker = self._workers.get(name)
            if worker is None:
                if self._stop.is_set():
                    raise ModelUnavailableError("the model supervisor is closed")
                self.registry.entry(name)  # ModelNotFoundError for unknown names
                worker = ModelWorker(
                    name,
                    lambda: self._loader(name),
                    max_batch_size=self.onnx.max_batch_size,
                    max_queue_delay_s=self.onnx.max_queue_delay_ms / 1000.0,
                    restart=self.restart,
                    adaptive=self.adaptive,
                )
                self._workers[name] = worker
            return worker

    def start(self, preload: list[str] | None = None) -> list[ModelHealth]:
        """Load the ``preload`` models (default: those marked ``preload``); start probing."""
        names = (
            preload
            if preload is not None
            else [e.name for e in self.registry.list_models() if e.preload]
        )
        health = [self.worker(name).start() for name in names]
        if self._monitor is None:
            self._monitor = threading.Thread(
                target=self._monitor_loop, name="onnx-health", daemon=True
            )
            self._monitor.start()
        return health

    def _monitor_loop(self) -> None:
        while not self._stop.wait(self.onnx.health_interval_s):
            self.check_health()

    def check_health(self) -> list[ModelHealth]:
        """Probe every started model now."""
        with self._lock:
            workers = list(self._workers.values())
        return [w.check_health() for w in workers]

    def health(self) -> list[ModelHealth]:
        """Health of every loaded model."""
        with self._lock:
            return [w.health() for w in self._workers.values()]

    def submit(
        self, name: str, inputs: Inputs, *, correlation_id: str | None = None
    ) -> Future[InferenceResult]:
        """Queue one request for the named model (loaded on first use)."""
        return self.worker(name).submit(inputs, correlation_id=correlation_id)

    def infer(
        self,
        name: str,
        inputs: Inputs,
        *,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> InferenceResult:
        """Blocking inference on model ``name`` through its batcher."""
        return self.submit(name, inputs, correlation_id=correlation_id).result(timeout)

    async def infer_async(
        self, name: str, inputs: Inputs, *, correlation_id: str | None = None
    ) -> InferenceResult:
        """Inference on model ``name`` without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(name, inputs, correlation_id=correlation_id))

    def close(self) -> None:
        """Stop probing, finish queued requests, close every session."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5.0)
        with self._lock:
            workers = list(self._workers.values())
        started = time.perf_counter()
        for worker in workers:
            worker.close()
        _log.debug("closed %d model workers in %.3fs", len(workers), time.perf_counter() - started)
