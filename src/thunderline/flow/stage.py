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
from typing import ClassVar

from thunderline.config import RetryPolicy, Settings, StageBudget
from thunderline.eventdata import Note, Routed, typed_event
from thunderline.events import CloudEvent, dlq_type_for
from thunderline.objects.base import ObjectStore

Outcome = list[CloudEvent] | BaseException


class StageOptions(StageBudget):
    """How the engine runs one stage: its budget, a resolved timeout, and the retry policy."""

    timeout_s: float = 60.0
    retry: RetryPolicy = RetryPolicy(attempts=3)

    @classmethod
    def for_stage(
        cls, settings: Settings, stage: str, *, default_timeout_s: float | None = None
    ) -> StageOptions:
        """A stage's options from settings: its budget and the engine's retry policy for it.

        The budget is :meth:`Settings.stage_budget`, the retry policy
        :meth:`Settings.stage_retry_policy`. Timeout: the stage's setting, else the stage's own
        default, else ``TL_STAGE_TIMEOUT_S``.
        """
        budget = settings.stage_budget(stage)
        timeout = budget.timeout_s or default_timeout_s or settings.stage_timeout_s
        return cls(
            batch_size=budget.batch_size,
            batch_timeout_s=budget.batch_timeout_s,
            concurrency=budget.concurrency,
            timeout_s=timeout,
            retry=settings.stage_retry_policy(stage),
        )


class Stage(ABC):
    """Base class of every stage. Subclasses set ``name`` and implement ``handle_batch``."""

    name: ClassVar[str]

    def __init__(self, options: StageOptions | None = None) -> None:
        self.options = options or StageOptions()

    @property
    def dlq_type(self) -> str:
        """The CloudEvents type of this stage's dead letters (``<...>.dlq.<stage>``)."""
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
        data: Routed,
        *,
        route: list[str] | None = None,
    ) -> CloudEvent:
        """The event this stage publishes for ``event``, carrying ``data``.

        ``data`` is the input's data extended with this stage's result (see
        :func:`thunderline.eventdata.extend`), itself off the route.

        ``data`` must be exactly the model registered for ``type``
        (:class:`~thunderline.errors.EventContractError` otherwise). The route is the routing
        slip: the first entry is this stage; it is removed so the bus delivers the new event to
        the next stage (or to the terminal sink when none is left). A stage that decides the
        route (classify) passes ``route`` explicitly.
        """
        if route is None:
            route = list(data.route)
            if route and route[0] == self.name:
                route = route[1:]
        data = data.model_copy(update={"route": route})
        return typed_event(type, data, parent=event, source=f"urn:thunderline:stage:{self.name}")

    def pass_on(self, event: CloudEvent, data: Routed, note: str) -> CloudEvent:
        """``event`` on to the next stage, unchanged but for a note in ``data.notes``.

        This stage does not apply to the artifact (an SVG for a raster model), which is not a
        failure of the artifact. The note reads ``skipped: <why>`` (the voxel's
        ``traits["skipped"]`` and the record's ``skipped`` list it).
        """
        if not note.startswith("skipped"):
            note = f"skipped: {note}"
        notes = [*(data.notes or []), Note(stage=self.name, note=note)]
        return self.advance(event, event.type, data.model_copy(update={"notes": notes}))


class StoreStage(Stage):
    """A pipeline stage over the payload store: settings, the store, and its options.

    The options come from :meth:`StageOptions.for_stage` unless given (the wiring table in
    :mod:`thunderline.runtime` builds every stage this way).
    """

    def __init__(
        self, settings: Settings, store: ObjectStore, options: StageOptions | None = None
    ) -> None:
        super().__init__(options or self.options_from(settings))
        self.settings = settings
        self.store = store

    @classmethod
    def options_from(cls, settings: Settings) -> StageOptions:
        """This stage's options from settings (what the engine runs it with by default)."""
        return StageOptions.for_stage(
            settings, cls.name, default_timeout_s=cls.default_timeout_s(settings)
        )

    @classmethod
    def default_timeout_s(cls, settings: Settings) -> float | None:
        """The stage's own batch timeout when its setting is unset (None: the engine's)."""
        return None
