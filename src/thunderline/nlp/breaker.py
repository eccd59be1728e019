"""A circuit breaker for the spaCy pool: closed -> open -> half-open -> closed.

Closed: calls go through; failures (worker crashes, timeouts, garbled answers) are counted in a
sliding window. ``failures`` of them within ``window_s`` open the breaker: calls are refused
with :class:`~thunderline.nlp.errors.NlpCircuitOpenError` for ``cooldown_s``. Then one probe
call is let through (half-open): its success closes the breaker, its failure opens it again.
The state is published in ``thunderline_spacy_circuit_state`` (0 closed, 1 half-open, 2 open).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum

from thunderline.nlp.errors import NlpCircuitOpenError
from thunderline.obs import metrics


class BreakerState(IntEnum):
    """Breaker states; the values are the metric's values."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Counts failures in a sliding window and refuses calls while open.

    Args:
        failures: Failures within ``window_s`` that open the breaker.
        window_s: Length of the sliding window.
        cooldown_s: Time the breaker stays open before a half-open probe.
        clock: Monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        failures: int,
        window_s: float,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._recent: deque[float] = deque()
        self._opened_at = 0.0
        self._probe_out = False
        self.state = BreakerState.CLOSED
        self.opened_count = 0
        metrics.SPACY_CIRCUIT_STATE.set(int(self.state))

    def _set(self, state: BreakerState) -> None:
        if state is BreakerState.OPEN and self.state is not BreakerState.OPEN:
            self.opened_count += 1
        self.state = state
        metrics.SPACY_CIRCUIT_STATE.set(int(state))

    def acquire(self) -> bool:
        """Ask to make a call; returns whether it is the half-open probe.

        Raises:
            NlpCircuitOpenError: the breaker is open (or half-open with its probe out).
        """
        if self.state is BreakerState.OPEN:
            waited = self._clock() - self._opened_at
            if waited < self.cooldown_s:
                raise NlpCircuitOpenError(
                    f"circuit open: {self.failures} worker failures within {self.window_s}s; "
                    f"retry in {self.cooldown_s - waited:.1f}s",
                    details={"cooldown_s": self.cooldown_s},
                )
            self._set(BreakerState.HALF_OPEN)
            self._probe_out = False
        if self.state is BreakerState.HALF_OPEN:
            if self._probe_out:
                raise NlpCircuitOpenError("circuit half-open: a probe document is in flight")
            self._probe_out = True
            return True
        return False

    def release(self, probe: bool) -> None:
        """A probe ended without an outcome (cancelled): let the next call probe."""
        if probe:
            self._probe_out = False

    def record_success(self, probe: bool = False) -> None:
        """A call got a well-formed answer from a worker."""
        if probe or self.state is BreakerState.HALF_OPEN:
            self._probe_out = False
            self._recent.clear()
            self._set(BreakerState.CLOSED)

    def record_failure(self, probe: bool = False) -> None:
        """A call failed because of the worker (crash, timeout, garbled answer)."""
        now = self._clock()
        if probe or self.state is BreakerState.HALF_OPEN:
            self._probe_out = False
            self._opened_at = now
            self._set(BreakerState.OPEN)
            return
        self._recent.append(now)
        while self._recent and now - self._recent[0] > self.window_s:
            self._recent.popleft()
        if self.state is BreakerState.CLOSED and len(self._recent) >= self.failures:
            self._opened_at = now
            self._recent.clear()
            self._set(BreakerState.OPEN)
