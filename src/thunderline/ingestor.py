"""How work enters the pipeline and how its ends come back: one interface, two backends.

:func:`thunderline.bus.factory.open_ingestor` picks the ingestor once, from the bus:

* :class:`~thunderline.runtime.Runtime` (``memory://``): the stages run in this process;
  outcomes come from its collector.
* :class:`~thunderline.worker.submit.Submitter` (a broker): local files are admitted and
  their bytes stored in the shared store before they are published for the workers; outcomes
  come from the outcome store the workers' collector fills.

``thunderline ingest``, ``thunderline dlq replay`` and ``thunderline serve`` use only this
interface (and :attr:`Ingestor.runtime`, set when the stages run here, where the API reports
on them).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from thunderline.bus.base import EventBus
from thunderline.classify.admission import check_size, open_input
from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.dlq.record import dead_letter
from thunderline.errors import ThunderlineError, UnreadableArtifactError
from thunderline.eventdata import IngestRequest, data_of, typed_event
from thunderline.events import DLQ_CLASSIFY, INGEST_RECEIVED, CloudEvent
from thunderline.objects.base import ObjectStore, StoredObject
from thunderline.obs import metrics
from thunderline.outcomes import OutcomeStore

if TYPE_CHECKING:
    from thunderline.runtime import Runtime

SUBMIT_SOURCE = "urn:thunderline:submit"


class Ingestor(Protocol):
    """Submits work and reports each artifact's end (``async with``)."""

    bus: EventBus
    store: ObjectStore

    @property
    def outcomes(self) -> OutcomeStore:
        """The outcome store (and DLQ records) of this pipeline."""
        ...

    @property
    def runtime(self) -> Runtime | None:
        """The in-process pipeline when the stages run here, else ``None``."""
        ...

    async def __aenter__(self) -> Ingestor: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def submit(self, event: CloudEvent, *, block: bool = True) -> None:
        """Send an event to where it goes (its next stage, the DLQ).

        A full queue waits (``block``) or raises :class:`~thunderline.errors.OverloadError`.
        """
        ...

    async def submit_event(
        self,
        event: CloudEvent,
        *,
        block: bool = True,
        keep_path: bool = True,
        executor: Executor | None = None,
    ) -> CloudEvent:
        """Admit and store the local file of an ingest event, then submit it.

        Returns what was sent: the stored ingest event, or the DLQ record of a refusal.
        """
        ...

    async def submit_files(self, candidates: Iterable[Candidate]) -> int:
        """Submit local files (a stream); returns how many."""
        ...

    async def submit_stored(
        self, event: CloudEvent, stored: StoredObject, *, block: bool = True
    ) -> CloudEvent:
        """Submit an ingest event whose file is in the store already (an adopted upload).

        Returns what was sent (:func:`stored_event`, without the local path).
        """
        ...

    async def wait_idle(self, timeout_s: float | None = None) -> None:
        """Until everything submitted has ended (``on_outcome`` saw each end)."""
        ...


def _store_file(
    store: ObjectStore,
    settings: Settings,
    event: CloudEvent,
    *,
    source: str = SUBMIT_SOURCE,
    keep_path: bool = True,
) -> CloudEvent:
    """Admit the event's local file and stream its bytes into the store; the event to publish.

    The file is opened once and checked on the descriptor, and its bytes are streamed through that
    descriptor. The returned ingest event names the bytes by ``payload_ref`` (the path stays for
    display unless ``keep_path`` is false, as for an upload's spool file; no worker reads it).
    """
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
    return stored_event(event, stored, source=source, keep_path=keep_path)


def stored_event(
    event: CloudEvent, stored: StoredObject, *, source: str = SUBMIT_SOURCE, keep_path: bool = True
) -> CloudEvent:
    """The ingest ``event`` naming its file's bytes, now in the store as ``stored``.

    The artifact gets ``size``, ``sha256`` and ``payload_ref`` (its ``root`` goes, its ``path``
    too unless ``keep_path``); the event keeps its id and chain.
    """
    request = data_of(event, IngestRequest)
    artifact = request.artifact
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
    # the same event, now naming stored bytes: its id and chain stay (a replay keeps its
    # correlation id; a first submission's event was never published)
    return typed_event(INGEST_RECEIVED, ready, source=source).model_copy(
        update={
            "id": event.id,
            "correlationid": event.correlationid,
            "causationid": event.causationid,
        }
    )


class AdmitsFiles:
    """:meth:`Ingestor.submit_event` for both ingestors (they differ in :meth:`submit`)."""

    settings: Settings
    store: ObjectStore
    source: str

    async def submit(self, event: CloudEvent, *, block: bool = True) -> None:
        """Publish one event into the runtime (each backend implements it)."""
        raise NotImplementedError

    async def submit_event(
        self,
        event: CloudEvent,
        *,
        block: bool = True,
        keep_path: bool = True,
        executor: Executor | None = None,
    ) -> CloudEvent:
        """Admit the event's local file and store its bytes (``payload_ref``), then submit it.

        A refused file is submitted as its ``classify`` DLQ record instead. Returns what was
        submitted. ``block=False``: a full queue raises ``OverloadError`` (the stored bytes stay,
        harmless: the store is content-addressed).
        """
        put = functools.partial(
            _store_file, self.store, self.settings, event, source=self.source, keep_path=keep_path
        )
        try:
            ready = await asyncio.get_running_loop().run_in_executor(executor, put)
        except ThunderlineError as exc:
            metrics.DLQ_TOTAL.labels("classify", exc.reason).inc()
            ready = dead_letter("classify", DLQ_CLASSIFY, exc, original=event)
        await self.submit(ready, block=block or ready.is_dlq)
        return ready

    async def submit_stored(
        self, event: CloudEvent, stored: StoredObject, *, block: bool = True
    ) -> CloudEvent:
        """Submit an ingest event whose file is in the store already (an adopted upload).

        Returns what was sent: :func:`stored_event` without the local path (the file that
        was adopted is gone). ``block=False``: a full queue raises ``OverloadError``.
        """
        ready = stored_event(event, stored, source=self.source, keep_path=False)
        await self.submit(ready, block=block)
        return ready
