"""The stage interface: one class per stage, knowing nothing of the bus backend.

A stage receives a batch of events and returns one :data:`Outcome` per event, in order: either
the list of events it produced (normally one; an archive may fan out into several) or the
exception that failed that event. Raising from ``handle_batch`` fails the whole batch.
The engine publishes the outputs, acknowledges the inputs, retries retryable errors and
dead-letters the rest (Broadway's ``handle_batch`` / ``handle_failed`` split).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from thunderline.config import Settings
from thunderline.events import CloudEvent, dlq_type_for

Outcome = list[CloudEvent] | BaseException


@dataclass(frozen=True)
class StageOptions:
    """How the engine runs one stage."""

    batch_size: int = 1
    batch_timeout_s: float = 0.0
    concurrency: int = 1
    timeout_s: float = 60.0
    max_attempts: int = 3
    backoff_s: float = 0.05
    backoff_max_s: float = 2.0

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        batch_size: int,
        batch_timeout_s: float,
        concurrency: int,
        timeout_s: float | None = None,
    ) -> StageOptions:
        """A stage's own batching, with the engine-wide timeout, attempts and backoff settings."""
        return cls(
            batch_size=batch_size,
            batch_timeout_s=batch_timeout_s,
            concurrency=concurrency,
            timeout_s=settings.stage_timeout_s if timeout_s is None else timeout_s,
            max_attempts=settings.max_attempts,
            backoff_s=settings.retry_backoff_s,
            backoff_max_s=settings.retry_backoff_max_s,
        )


class Stage(ABC):
    """Base class of every stage. Subclasses set ``name`` and implement ``handle_batch``."""

    name: ClassVar[str]

    def __init__(self, options: StageOptions | None = None) -> None:
        self.options = options or StageOptions()

    @property
    def dlq_type(self) -> str:
        return dlq_type_for(self.name)

    async def setup(self) -> None:  # noqa: B027 - optional hook
        """Load models, open connections. Called once before the first batch."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``setup`` acquired. Called once after the last batch."""

    @abstractmethod
    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        """Process ``events``; return one outcome per event, in the same order."""

    def advance(
        self,
        event: CloudEvent,
        type: str,
        results: dict[str, Any],
        *,
        route: list[str] | None = None,
    ) -> CloudEvent:
        """The event this stage publishes for ``event``: results merged in, itself off the route.

        The route is the routing slip: the first entry is this stage; it is removed so the bus
        delivers the new event to the next stage (or to the terminal sink when none is left).
        A stage that decides the route (classify) passes ``route`` explicitly.
        """
        if route is None:
            route = event.route
            if route and route[0] == self.name:
                route = route[1:]
        data = {**event.data, **results, "route": route}
        return event.derive(type, data, source=f"urn:thunderline:stage:{self.name}")

    def pass_on(self, event: CloudEvent, note: str) -> CloudEvent:
        """``event`` unchanged but for a note, to the next stage: this stage does not apply to
        the artifact (an SVG for a raster model), which is not a failure of the artifact."""
        notes = event.data.get("notes")
        kept = list(notes) if isinstance(notes, list) else []
        return self.advance(
            event, event.type, {"notes": [*kept, {"stage": self.name, "note": note}]}
        )
