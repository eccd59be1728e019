"""Circuit breaker states with an injected clock, and its metric."""

from __future__ import annotations

import pytest

from thunderline.nlp.breaker import BreakerState, CircuitBreaker
from thunderline.nlp.errors import NlpCircuitOpenError
from thunderline.obs import metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gauge() -> float:
    return metrics.sample("thunderline_spacy_circuit_state")


def test_opens_after_n_failures_within_the_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, window_s=60, cooldown_s=30, clock=clock)
    for _ in range(2):
        assert breaker.acquire() is False
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and gauge() == 0
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and gauge() == 2
    with pytest.raises(NlpCircuitOpenError) as caught:
        breaker.acquire()
    assert caught.value.reason == "circuit_open"


def test_failures_outside_the_window_do_not_count() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, window_s=60, cooldown_s=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 61
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_half_open_lets_one_probe_and_success_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, window_s=60, cooldown_s=30, clock=clock)
    breaker.record_failure()
    clock.now += 29
    with pytest.raises(NlpCircuitOpenError):
        breaker.acquire()
    clock.now += 2
    assert breaker.acquire() is True
    assert breaker.state is BreakerState.HALF_OPEN and gauge() == 1
    with pytest.raises(NlpCircuitOpenError, match="probe"):
        breaker.acquire()
    breaker.record_success(probe=True)
    assert breaker.state is BreakerState.CLOSED and gauge() == 0
    assert breaker.acquire() is False


def test_failed_probe_opens_again_and_cancelled_probe_is_released() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, window_s=60, cooldown_s=30, clock=clock)
    breaker.record_failure()
    clock.now += 31
    probe = breaker.acquire()
    breaker.record_failure(probe)
    assert breaker.state is BreakerState.OPEN and breaker.opened_count == 2
    clock.now += 31
    probe = breaker.acquire()
    breaker.release(probe)
    assert breaker.acquire() is True  # the next call may probe
