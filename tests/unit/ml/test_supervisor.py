"""Supervision: preload, restart after an injected session fault, unhealthy fails fast."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.unit.ml._helpers import MODELS_KEY, tamper

from thunderline.ml import (
    InferenceError,
    ModelNotFoundError,
    ModelRegistry,
    ModelState,
    ModelSupervisor,
    ModelUnavailableError,
    OnnxModel,
)
from thunderline.obs import metrics


class FaultySession:
    """A real ONNX Runtime session with a fault injected on purpose: ``run`` raises while
    ``failing`` is set (the rest is delegated)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.failing = True

    def run(self, names: Any, feeds: Any) -> Any:
        if self.failing:
            raise RuntimeError("injected fault: session is broken")
        return self.real.run(names, feeds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class FaultInjector:
    """A loader that breaks the session of chosen loads (1-based load numbers)."""

    def __init__(self, registry: ModelRegistry, broken_loads: set[int]) -> None:
        self.registry = registry
        self.broken_loads = broken_loads
        self.loads = 0
        self.sessions: list[FaultySession] = []

    def __call__(self, name: str) -> OnnxModel:
        self.loads += 1
        model = self.registry.get_model(name)
        if self.loads in self.broken_loads:
            faulty = FaultySession(model.session)
            faulty.failing = False  # let the load probe pass; break it afterwards
            self.sessions.append(faulty)
            model.session = faulty  # type: ignore[assignment]
        return model


def _x() -> np.ndarray:
    return np.random.default_rng(0).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)


def _supervisor(registry: ModelRegistry, **kw: Any) -> ModelSupervisor:
    kw.setdefault("adaptive", False)
    kw.setdefault("restart_backoff_s", 0.01)
    kw.setdefault("health_interval_s", 3600)
    return ModelSupervisor(registry, max_batch_size=4, max_queue_delay_s=0.001, **kw)


def test_preload_loads_marked_models_only(model_copy: Path) -> None:
    supervisor = _supervisor(ModelRegistry(model_copy, public_key=MODELS_KEY))
    try:
        health = supervisor.start()
        assert [h.name for h in health] == ["image_classifier"]
        assert health[0].state is ModelState.HEALTHY and health[0].probe_ms is not None
        assert metrics.sample("thunderline_onnx_model_healthy", {"model": "image_classifier"}) == 1
        fixed = supervisor.worker("image_classifier_fixed")
        assert fixed.health().state is ModelState.IDLE
        supervisor.infer("image_classifier_fixed", _x(), timeout=60)
        assert fixed.health().state is ModelState.HEALTHY
        with pytest.raises(ModelNotFoundError):
            supervisor.worker("missing")
    finally:
        supervisor.close()
    assert {h.name: h.state for h in supervisor.health()} == {
        "image_classifier": ModelState.CLOSED,
        "image_classifier_fixed": ModelState.CLOSED,
    }


def test_failing_session_is_restarted(model_copy: Path) -> None:
    registry = ModelRegistry(model_copy, public_key=MODELS_KEY)
    injector = FaultInjector(registry, broken_loads={1})
    supervisor = _supervisor(registry, loader=injector)
    before = metrics.sample(
        "thunderline_onnx_session_restarts_total", {"model": "image_classifier"}
    )
    try:
        supervisor.start()
        injector.sessions[0].failing = True  # the session starts failing
        with pytest.raises(InferenceError, match="injected fault") as info:
            supervisor.infer("image_classifier", _x(), timeout=60)
        assert info.value.retryable
        result = supervisor.infer("image_classifier", _x(), timeout=60)  # reloaded session
        assert result["probabilities"].shape == (1, 10)
        health = supervisor.worker("image_classifier").health()
        assert health.state is ModelState.HEALTHY and health.restarts == 1
        assert health.failures == 0 and injector.loads == 2
    finally:
        supervisor.close()
    after = metrics.sample("thunderline_onnx_session_restarts_total", {"model": "image_classifier"})
    assert after == before + 1


def test_health_probe_restarts_a_broken_session(model_copy: Path) -> None:
    registry = ModelRegistry(model_copy, public_key=MODELS_KEY)
    injector = FaultInjector(registry, broken_loads={1})
    supervisor = _supervisor(registry, loader=injector, health_interval_s=0.05)
    try:
        supervisor.start()
        injector.sessions[0].failing = True
        worker = supervisor.worker("image_classifier")
        deadline = time.monotonic() + 20
        while worker.health().restarts < 1 or worker.health().state is not ModelState.HEALTHY:
            assert time.monotonic() < deadline, worker.health()
            time.sleep(0.02)
        assert injector.loads == 2  # the monitor's probe found the fault and reloaded
    finally:
        supervisor.close()


def test_model_that_keeps_failing_is_unhealthy_and_fails_fast(model_copy: Path) -> None:
    registry = ModelRegistry(model_copy, public_key=MODELS_KEY)
    injector = FaultInjector(registry, broken_loads={1})
    supervisor = _supervisor(registry, loader=injector, max_failures=3)
    try:
        supervisor.start()
        tamper(
            model_copy / "image_classifier" / "onnx" / "image_classifier.onnx"
        )  # every reload is refused
        injector.sessions[0].failing = True
        with pytest.raises(InferenceError):
            supervisor.infer("image_classifier", _x(), timeout=60)
        started = time.monotonic()
        with pytest.raises(ModelUnavailableError, match="unhealthy") as info:
            supervisor.infer("image_classifier", _x(), timeout=60)
        assert not info.value.retryable and info.value.reason == "model_unhealthy"
        worker = supervisor.worker("image_classifier")
        assert worker.health().state is ModelState.UNHEALTHY
        assert "checksum_mismatch" in (worker.health().last_error or "")
        assert metrics.sample("thunderline_onnx_model_healthy", {"model": "image_classifier"}) == 0
        # from now on requests fail fast, without reload attempts
        loads = injector.loads
        with pytest.raises(ModelUnavailableError):
            supervisor.infer("image_classifier", _x(), timeout=60)
        assert injector.loads == loads
        assert time.monotonic() - started < 10
    finally:
        supervisor.close()


def test_unhealthy_model_recovers_when_the_file_is_fixed(model_copy: Path) -> None:
    registry = ModelRegistry(model_copy, public_key=MODELS_KEY)
    path = model_copy / "image_classifier" / "onnx" / "image_classifier.onnx"
    good = path.read_bytes()
    tamper(path)
    supervisor = _supervisor(registry, max_failures=2)
    try:
        health = supervisor.start()
        assert health[0].state is ModelState.UNHEALTHY
        with pytest.raises(ModelUnavailableError):
            supervisor.infer("image_classifier", _x(), timeout=60)
        path.write_bytes(good)
        assert supervisor.check_health()[0].state is ModelState.HEALTHY
        assert supervisor.infer("image_classifier", _x(), timeout=60).batch_size == 1
    finally:
        supervisor.close()


def test_closed_supervisor_refuses_requests(model_copy: Path) -> None:
    supervisor = _supervisor(ModelRegistry(model_copy, public_key=MODELS_KEY))
    supervisor.start()
    supervisor.close()
    with pytest.raises(ModelUnavailableError):
        supervisor.infer("image_classifier", _x(), timeout=5)
