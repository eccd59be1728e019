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
import functools
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from pathlib import Path

from thunderline.bus.base import DLQ_TOPIC
from thunderline.bus.factory import open_bus
from thunderline.bus.rabbitmq import RabbitMQBus
from thunderline.classify.admission import check_size, open_input
from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.errors import ThunderlineError, UnreadableArtifactError
from thunderline.eventdata import IngestRequest, data_of, typed_event
from thunderline.events import DLQ_CLASSIFY, INGEST_RECEIVED, CloudEvent
from thunderline.flow.engine import dlq_event
from thunderline.objects.base import ObjectStore
from thunderline.objects.factory import open_object_store
from thunderline.obs import metrics
from thunderline.outcomes import OutcomeRecord, OutcomeStore
from thunderline.runtime import ingest_event
from thunderline.worker.settle import expected, final_outcomes

_log = logging.getLogger("thunderline.worker.submit")
SUBMIT_SOURCE = "urn:thunderline:submit"
#: After this long without a new outcome, waiting submitters say what they wait for.
STALL_WARN_S = 30.0


def _store_file(
    store: ObjectStore,
    settings: Settings,
    event: CloudEvent,
    *,
    source: str = SUBMIT_SOURCE,
    keep_path: bool = True,
) -> CloudEvent:
    """Admit the event's local file (opened once, checked on the descriptor) and stream its
    bytes through that descriptor into the store; the ingest event to publish, which names
    the bytes by ``payload_ref`` (the path stays for display unless ``keep_path`` is false,
    as for an upload's spool file; no worker reads it)."""
    request = data_of(event, IngestRequest)
    artifact = request.artifact
    path = Path(str(artifact.path))
    limit = settings.max_artifact_bytes
    root = Path(artifact.root) if artifact.root else None
    with open_input(path, root, allow_hardlinks=settings.allow_hardlinks) as admitted:
        check_size(admitted, limit)
        try:
            stored = store.put_fd(admitted.fd, max_bytes=limit)
        except OSError as exc:
            raise UnreadableArtifactError(f"{path}: {exc.strerror or exc}") from exc
    stored_artifact = artifact.model_copy(
        update={
            "size": stored.size,
            "sha256": stored.sha256,
            "payload_ref": stored.ref,
            "root": None,
            **({} if keep_path else {"path": None}),
        }
    )
    ready = request.model_copy(update={"artifact": stored_artifact})
    return typed_event(INGEST_RECEIVED, ready, source=source)


class Submitter:
    """Publishes local files into the shared pipeline (``async with``)."""

    def __init__(self, settings: Settings, *, source: str = SUBMIT_SOURCE) -> None:
        self.settings = settings
        self.source = source
        self.store = open_object_store(settings)
        bus = open_bus(settings)
        if not isinstance(bus, RabbitMQBus):
            raise TypeError("the submitter needs the RabbitMQ bus (TL_BUS_URL=amqp://…)")
        self.bus = bus

    async def __aenter__(self) -> Submitter:
        await self.bus.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.bus.close()

    async def submit(self, candidate: Candidate) -> CloudEvent:
        """Submit one file; returns the published event (an ingest event or a DLQ record)."""
        return await self.submit_event(ingest_event(candidate))

    async def submit_event(
        self,
        event: CloudEvent,
        *,
        block: bool = True,
        keep_path: bool = True,
        executor: Executor | None = None,
    ) -> CloudEvent:
        """Admit and store the local file of an ingest event, then publish it to ``classify``;
        returns the published event (an ingest event or a DLQ record). With ``block=False`` a
        full ``classify`` queue raises :class:`~thunderline.errors.OverloadError` (the bytes
        stay in the content-addressed store, harmless) instead of waiting."""
        store = functools.partial(
            _store_file,
            self.store,
            self.settings,
            event,
            source=self.source,
            keep_path=keep_path,
        )
        try:
            ready = await asyncio.get_running_loop().run_in_executor(executor, store)
        except ThunderlineError as exc:
            record = dlq_event("classify", DLQ_CLASSIFY, exc, original=event)
            metrics.DLQ_TOTAL.labels("classify", exc.reason).inc()
            await self.bus.publish(DLQ_TOPIC, record.to_bytes())
            return record
        await self.bus.publish("classify", ready.to_bytes(), block=block)
        metrics.EVENTS_PUBLISHED.labels(ready.type).inc()
        return ready

    async def submit_all(
        self, candidates: Iterable[Candidate], *, concurrency: int = 16
    ) -> list[str]:
        """Submit files, ``concurrency`` at a time (each waits for its own store write and
        broker confirm); returns their correlation ids in the order given."""
        gate = asyncio.Semaphore(concurrency)

        async def one(candidate: Candidate) -> str:
            async with gate:
                return (await self.submit(candidate)).correlationid

        return list(await asyncio.gather(*(one(c) for c in candidates if not c.skipped)))


async def wait_outcomes(
    store: OutcomeStore,
    correlation_ids: list[str],
    *,
    on_outcome: Callable[[OutcomeRecord], object] | None = None,
    timeout_s: float | None = None,
    poll_s: float = 0.25,
) -> list[OutcomeRecord]:
    """Poll the outcome store until every correlation id has the final outcome of each of its
    artifacts (:mod:`.settle`); ``on_outcome`` sees each final outcome once."""
    pending = set(correlation_ids)
    final: dict[tuple[str, str], OutcomeRecord] = {}
    reported: set[tuple[str, str]] = set()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    progress_at = time.monotonic()
    while pending:
        found = await asyncio.to_thread(store.by_correlations, sorted(pending))
        settled = final_outcomes(found)
        if len(final) < len({**final, **settled}):
            progress_at = time.monotonic()
        elif time.monotonic() - progress_at > STALL_WARN_S:
            _log.warning(
                "no new outcome for %.0fs; %d submissions pending (is a worker with "
                "--stages collect running against this bus and database?)",
                STALL_WARN_S,
                len(pending),
            )
            progress_at = time.monotonic()
        final.update(settled)
        per: dict[str, list[OutcomeRecord]] = {}
        for (cid, _artifact), record in settled.items():
            per.setdefault(cid, []).append(record)
        for cid, records in per.items():
            if len(records) >= expected(records):
                pending.discard(cid)
                for record in records:
                    key = (cid, record.artifact or f"event:{record.id}")
                    if key not in reported and on_outcome is not None:
                        on_outcome(record)
                    reported.add(key)
        if not pending:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} submissions have no outcome yet")
        await asyncio.sleep(poll_s)
    return list(final.values())
