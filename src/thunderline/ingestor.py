"""How work enters the pipeline and how its ends come back: one interface, two backends.

:func:`thunderline.bus.factory.open_ingestor` picks the ingestor once, from the bus:

* :class:`LocalIngestor` (``memory://``): the stages run in this process
  (:class:`~thunderline.runtime.Runtime`); outcomes come from its collector.
* :class:`~thunderline.worker.submit.Submitter` (a broker): local files are admitted and
  their bytes stored in the shared store before they are published for the workers; outcomes
  come from the outcome store the workers' collector fills.

``thunderline ingest``, ``thunderline dlq replay`` and ``thunderline serve`` use only this
interface (plus :attr:`Ingestor.runs_stages` where the API reports on stages it runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Protocol

from thunderline.bus.base import EventBus
from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.events import CloudEvent
from thunderline.objects.base import ObjectStore
from thunderline.outcomes import OutcomeStore
from thunderline.runtime import Runtime
from thunderline.worker.submit import SUBMIT_SOURCE, stored_event

OnOutcome = Callable[[CloudEvent], object]


class Ingestor(Protocol):
    """Submits work and reports each artifact's end (``async with``)."""

    #: Whether the stages run in this process (the API reports on them, then).
    runs_stages: bool
    bus: EventBus
    store: ObjectStore

    @property
    def runtime(self) -> Runtime | None:
        """The in-process pipeline when the stages run here, else ``None``."""
        ...

    @property
    def outcomes(self) -> OutcomeStore:
        """The outcome store (and DLQ records) of this pipeline."""
        ...

    async def __aenter__(self) -> Ingestor: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def send(self, event: CloudEvent, *, block: bool = True) -> None:
        """Send an event to where it goes (its next stage, the DLQ); a full queue waits
        (``block``) or raises :class:`~thunderline.errors.OverloadError`."""
        ...

    async def submit_event(
        self,
        event: CloudEvent,
        *,
        block: bool = True,
        keep_path: bool = True,
        executor: Executor | None = None,
    ) -> CloudEvent:
        """Admit and store the local file of an ingest event, then send it; returns what was
        sent (the stored ingest event, or the DLQ record of a refusal)."""
        ...

    async def submit_files(self, candidates: Iterable[Candidate]) -> int:
        """Submit local files (a stream); returns how many."""
        ...

    async def wait(self, timeout_s: float | None = None) -> None:
        """Until everything :meth:`submit_files` submitted has ended (``on_outcome`` saw
        each end)."""
        ...


class LocalIngestor:
    """The stages in this process: a :class:`~thunderline.runtime.Runtime` behind the
    :class:`Ingestor` interface."""

    runs_stages = True

    def __init__(
        self,
        settings: Settings,
        *,
        on_outcome: OnOutcome | None = None,
        source: str = SUBMIT_SOURCE,
    ) -> None:
        self.settings = settings
        self.source = source
        self.runtime: Runtime = Runtime(settings, on_terminal=on_outcome)
        self.bus = self.runtime.bus
        self.store = self.runtime.store

    @property
    def outcomes(self) -> OutcomeStore:
        return self.runtime.outcomes

    async def __aenter__(self) -> LocalIngestor:
        await self.runtime.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runtime.__aexit__(*exc)

    async def send(self, event: CloudEvent, *, block: bool = True) -> None:
        await self.runtime.pipeline.submit(event, block=block)

    async def submit_event(
        self,
        event: CloudEvent,
        *,
        block: bool = True,
        keep_path: bool = True,
        executor: Executor | None = None,
    ) -> CloudEvent:
        ready = await stored_event(
            self.store,
            self.settings,
            event,
            source=self.source,
            keep_path=keep_path,
            executor=executor,
        )
        await self.send(ready, block=block or ready.is_dlq)
        return ready

    async def submit_files(self, candidates: Iterable[Candidate]) -> int:
        return await self.runtime.submit_files(candidates)

    async def wait(self, timeout_s: float | None = None) -> None:
        await self.runtime.wait_idle(timeout_s)
