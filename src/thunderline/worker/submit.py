"""Location-free submission: admit a local file, put its bytes in the shared store, publish.

In scale-out mode no worker may need the submitter's path (ARCHITECTURE §1). The submitter
admits each file (the same checks as the embedded classify stage), streams its bytes into the
shared object store, and only then publishes ``ui.command.ingest.received`` with
``payload_ref`` to the ``classify`` queue. A file refused at admission becomes a
``system.dlq.classify_failed`` record on the ``dlq`` queue, as in the embedded mode, so the
collector records it like any other outcome.

:func:`wait_outcomes` then follows exactly the submitter's own correlation ids in the outcome
store until each artifact (and each member of an archive) has its final outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from thunderline.bus.factory import open_bus
from thunderline.bus.served import WATCHED_TOPICS, UnservedWatch
from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.eventdata import IngestRequest, data_of
from thunderline.events import INGEST_RECEIVED, CloudEvent
from thunderline.flow.engine import topic_for
from thunderline.ingestor import SUBMIT_SOURCE, AdmitsFiles
from thunderline.objects.factory import open_object_store
from thunderline.obs import metrics
from thunderline.outcomes import OutcomeRecord, OutcomeStore
from thunderline.runtime import Runtime, ingest_event
from thunderline.worker.settle import settled

_log = logging.getLogger("thunderline.worker.submit")
#: After this long without a new outcome, waiting submitters say what they wait for.
STALL_WARN_S = 30.0


class Submitter(AdmitsFiles):
    """The :class:`~thunderline.ingestor.Ingestor` of a shared bus (``async with``).

    It admits local files, stores their bytes in the shared store, publishes them for the workers,
    and follows the outcomes the workers' collector records.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        source: str = SUBMIT_SOURCE,
        on_outcome: Callable[[CloudEvent], object] | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.on_outcome = on_outcome
        self.store = open_object_store(settings)
        self.bus = open_bus(settings)
        self._outcomes: OutcomeStore | None = None
        self._pending: list[str] = []
        self.watch: UnservedWatch | None = None  # the last wait's (what it reported)

    @property
    def outcomes(self) -> OutcomeStore:
        """The outcome store the workers' collector fills (open inside ``async with``)."""
        if self._outcomes is None:
            raise RuntimeError("the submitter is not open")
        return self._outcomes

    @property
    def runtime(self) -> Runtime | None:
        """No pipeline runs here: the workers run the stages."""
        return None

    async def __aenter__(self) -> Submitter:
        await self.bus.connect()
        try:
            self._outcomes = await asyncio.to_thread(OutcomeStore, self.settings)
        except BaseException:
            await self.bus.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.bus.close()
        finally:
            if self._outcomes is not None:
                await asyncio.to_thread(self._outcomes.close)
                self._outcomes = None

    async def submit(self, event: CloudEvent, *, block: bool = True) -> None:
        """Publish an event (broker-confirmed) to where it goes: its next stage or the DLQ.

        An ingest event that names only a local file (a replay of a refused submission) is admitted
        and stored first: a worker never reads a local path.
        """
        if event.type == INGEST_RECEIVED and not data_of(event, IngestRequest).artifact.payload_ref:
            await self.submit_event(event, block=block)
            return
        await self.bus.publish(topic_for(event), event.to_bytes(), block=block)
        metrics.EVENTS_PUBLISHED.labels(event.type).inc()

    async def submit_all(
        self, candidates: Iterable[Candidate], *, concurrency: int = 16
    ) -> list[str]:
        """Submit files, ``concurrency`` at a time; returns their correlation ids in given order.

        Each waits for its own store write and broker confirm.
        """
        gate = asyncio.Semaphore(concurrency)

        async def one(candidate: Candidate) -> str:
            async with gate:
                return (await self.submit_event(ingest_event(candidate))).correlationid

        return list(await asyncio.gather(*(one(c) for c in candidates if not c.skipped)))

    async def submit_files(self, candidates: Iterable[Candidate]) -> int:
        """Submit files; :meth:`wait` then waits for their outcomes. Returns how many."""
        ids = await self.submit_all(candidates)
        self._pending.extend(ids)
        return len(ids)

    async def wait_idle(self, timeout_s: float | None = None) -> None:
        """Wait until every file submitted by :meth:`submit_files` has its final outcome.

        Each outcome is handed to ``on_outcome`` once. A stage queue with messages and no worker is
        reported at once and every 30 s (:class:`~thunderline.bus.served.UnservedWatch`); after
        ``TL_BUS_UNSERVED_TIMEOUT_S`` of that without progress it raises
        :class:`~thunderline.errors.UnservedStageError` (0: wait without end).
        """
        on_outcome = self.on_outcome

        def report(record: OutcomeRecord) -> None:
            if on_outcome is not None:
                on_outcome(record.event)

        pending, self._pending = self._pending, []
        self.watch = UnservedWatch(
            self.bus, WATCHED_TOPICS, timeout_s=self.settings.bus.unserved_timeout_s
        )
        await wait_outcomes(
            self.outcomes, pending, on_outcome=report, timeout_s=timeout_s, watch=self.watch
        )


async def wait_outcomes(
    store: OutcomeStore,
    correlation_ids: list[str],
    *,
    on_outcome: Callable[[OutcomeRecord], object] | None = None,
    timeout_s: float | None = None,
    poll_s: float = 0.25,
    watch: UnservedWatch | None = None,
) -> list[OutcomeRecord]:
    """Poll the outcome store until every correlation id has the final outcome of each artifact.

    Final outcomes are decided by :mod:`.settle`; ``on_outcome`` sees each final outcome once.
    ``watch`` looks at the stage queues meanwhile (reports a stage no worker serves; may raise
    :class:`~thunderline.errors.UnservedStageError`).
    """
    pending = set(correlation_ids)
    final: list[OutcomeRecord] = []
    known: set[str] = set()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    progress_at = warned_at = time.monotonic()  # the last new outcome; the last stall line
    while pending:
        found = await asyncio.to_thread(store.by_correlations, sorted(pending))
        if not known.issuperset(r.id for r in found):
            known.update(r.id for r in found)
            progress_at = warned_at = time.monotonic()
        elif time.monotonic() - warned_at > STALL_WARN_S:
            _log.warning(
                "no new outcome for %.0fs; %d submissions pending (is a worker with "
                "--stages collect running against this bus and database?)",
                time.monotonic() - progress_at,
                len(pending),
            )
            warned_at = time.monotonic()
        for cid, records in settled(found).items():
            pending.discard(cid)
            final.extend(records)
            for record in records:
                if on_outcome is not None:
                    on_outcome(record)
        if not pending:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} submissions have no outcome yet")
        if watch is not None:
            await watch.check(progress_at)
        await asyncio.sleep(poll_s)
    return final
