"""A kit for testing stages: typed events, stages run over an in-process bus, terminal records.

What Broadway's ``test_message`` and dummy producer are to a Broadway pipeline::

    from thunderline.testing import classified, run_stages

    event = classified(store, b"Hello from Paris.", kind="txt", route=["nlp"])
    [end] = await run_stages([NlpStage(settings, store)], [event])
    assert end.type == "system.nlp.processed"

:func:`run_stages` runs the real engine (:class:`~thunderline.flow.Pipeline`) on a real
:class:`~thunderline.bus.MemoryBus` and returns every terminal and DLQ event. By default it
raises :class:`StageContractError` when a stage published data that is not its event type's
model (in production that is dead-lettered as ``contract_violation``), so a stage bug fails the
test that met it. The builders make events the way the pipeline does (really stored bytes,
events derived along one correlation chain).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Final

from thunderline.bus.base import EventBus
from thunderline.bus.memory import MemoryBus
from thunderline.errors import EventContractError
from thunderline.eventdata import (
    Artifact,
    Classification,
    Classified,
    DlqRecord,
    EventData,
    IngestRequest,
    Parent,
    StoredArtifact,
    data_of,
    register,
    typed_event,
    unregister,
)
from thunderline.events import INGEST_CLASSIFIED, INGEST_RECEIVED, CloudEvent
from thunderline.flow.engine import Pipeline
from thunderline.flow.stage import Stage
from thunderline.objects.base import ObjectStore
from thunderline.report import ArtifactRecord, record_from_event

TEST_SOURCE: Final = "urn:thunderline:test"

#: Classification fields per kind, as Magika reports them.
KINDS: Final[dict[str, dict[str, Any]]] = {
    "txt": {"label": "txt", "group": "text", "mime": "text/plain", "is_text": True},
    "markdown": {"label": "markdown", "group": "text", "mime": "text/markdown", "is_text": True},
    "html": {"label": "html", "group": "code", "mime": "text/html", "is_text": True},
    "rtf": {"label": "rtf", "group": "text", "mime": "text/rtf", "is_text": True},
    "pdf": {"label": "pdf", "group": "document", "mime": "application/pdf", "is_text": False},
    "png": {"label": "png", "group": "image", "mime": "image/png", "is_text": False},
    "jpeg": {"label": "jpeg", "group": "image", "mime": "image/jpeg", "is_text": False},
    "zip": {"label": "zip", "group": "archive", "mime": "application/zip", "is_text": False},
    "tar": {"label": "tar", "group": "archive", "mime": "application/x-tar", "is_text": False},
    "unknown": {
        "label": "unknown",
        "group": "unknown",
        "mime": "application/octet-stream",
        "is_text": False,
    },
}


class StageContractError(AssertionError):
    """A stage under test published data that does not match its event type's model."""


# ---- building events ---------------------------------------------------------------------
def event(event_type: str, data: EventData, *, source: str = TEST_SOURCE) -> CloudEvent:
    """A new event (its own correlation chain) carrying ``data``, checked against the registry."""
    return typed_event(event_type, data, source=source)


def classification(
    kind: str = "txt", *, score: float = 0.99, model: str = "test"
) -> Classification:
    """A Magika-like classification of ``kind`` (a key of :data:`KINDS`)."""
    fields = KINDS[kind]
    return Classification(
        **fields,
        score=score,
        description=fields["label"],
        dl_label=fields["label"],
        overwrite_reason="none",
        model=model,
    )


def stored_artifact(
    store: ObjectStore, payload: bytes, *, name: str = "a.txt", source: str | None = None
) -> StoredArtifact:
    """Put ``payload`` into ``store`` and describe it as a stored artifact."""
    stored = store.put_bytes(payload)
    return StoredArtifact(
        name=name,
        size=stored.size,
        sha256=stored.sha256,
        payload_ref=stored.ref,
        source=source if source is not None else f"file:///data/{name}",
    )


def ingest(
    artifact: Artifact,
    *,
    route: Sequence[str] = ("classify",),
    parent: Parent | None = None,
    coords: dict[str, Any] | None = None,
) -> CloudEvent:
    """The ``ui.command.ingest.received`` event for ``artifact`` (a new correlation chain)."""
    request = IngestRequest(artifact=artifact, route=list(route), parent=parent, coords=coords)
    return event(INGEST_RECEIVED, request)


def ingest_file(path: str, *, root: str | None = None) -> CloudEvent:
    """The ingest event of a local file, as the CLI makes it (``path`` is opaque)."""
    name = path.rsplit("/", 1)[-1]
    return ingest(Artifact(name=name, path=path, root=root, source=f"file://{path}"))


def classified(
    store: ObjectStore,
    payload: bytes,
    kind: str = "txt",
    *,
    name: str | None = None,
    source: str | None = None,
    route: Sequence[str] = ("package",),
    parent: Parent | None = None,
    coords: dict[str, Any] | None = None,
    result: Classification | None = None,
) -> CloudEvent:
    """The ``system.ingest.classified`` event the classify stage would publish for ``payload``.

    The bytes are really stored, and the event is derived from its ingest event.
    """
    artifact = stored_artifact(
        store, payload, name=name or f"sample.{KINDS[kind]['label']}", source=source
    )
    start = ingest(artifact, parent=parent, coords=coords)
    data = Classified(
        artifact=artifact,
        classification=result or classification(kind),
        route=list(route),
        parent=parent,
        coords=coords,
    )
    return typed_event(
        INGEST_CLASSIFIED, data, parent=start, source="urn:thunderline:stage:classify"
    )


@contextmanager
def event_types(types: Mapping[str, type[EventData]]) -> Iterator[None]:
    """Register event types (a test stage's data models) for the ``with`` block only."""
    for name, model in types.items():
        register(name, model)
    try:
        yield
    finally:
        for name in types:
            unregister(name)


# ---- running stages ----------------------------------------------------------------------
def check_contracts(ends: Iterable[CloudEvent]) -> None:
    """Raise :class:`StageContractError` for any ``contract_violation`` dead letter."""
    for end in ends:
        if end.is_dlq:
            record = data_of(end, DlqRecord)
            if record.reason == EventContractError.reason:
                raise StageContractError(
                    f"stage {record.stage} broke its output contract: {record.error.message}"
                )


class StageRunner:
    """Stages running on an in-process bus; submit events, then collect what ended.

    ``async with StageRunner([stage]) as runner: await runner.submit(e); ends = await
    runner.drain()``. Every terminal and DLQ event lands in ``runner.ends``.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        bus: EventBus | None = None,
        max_demand: int = 256,
        strict: bool = True,
    ) -> None:
        self.ends: list[CloudEvent] = []
        self.bus = bus if bus is not None else MemoryBus()
        self.strict = strict
        self.pipeline = Pipeline(
            self.bus, stages, max_demand=max_demand, on_terminal=self.ends.append
        )

    async def __aenter__(self) -> StageRunner:
        await self.pipeline.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.pipeline.stop()

    async def submit(self, *events: CloudEvent) -> None:
        """Submit events to the pipeline."""
        for item in events:
            await self.pipeline.submit(item)

    async def drain(self, timeout_s: float = 60.0) -> list[CloudEvent]:
        """Wait until everything submitted has ended; the terminal and DLQ events so far."""
        await self.pipeline.wait_idle(timeout_s)
        if self.strict:
            check_contracts(self.ends)
        return list(self.ends)


async def run_stages(
    stages: Sequence[Stage],
    events: Iterable[CloudEvent],
    *,
    bus: EventBus | None = None,
    max_demand: int = 256,
    timeout_s: float = 60.0,
    strict: bool = True,
) -> list[CloudEvent]:
    """Run ``stages`` (set up and closed here) over ``events``; the terminal and DLQ events."""
    async with StageRunner(stages, bus=bus, max_demand=max_demand, strict=strict) as runner:
        await runner.submit(*events)
        return await runner.drain(timeout_s)


async def test_message(stage: Stage, message: CloudEvent, *, timeout_s: float = 60.0) -> CloudEvent:
    """Broadway's ``test_message``: one event through one stage; its single end event."""
    ends = await run_stages([stage], [message], timeout_s=timeout_s)
    if len(ends) != 1:
        raise AssertionError(f"expected one end event, got {[e.type for e in ends]}")
    return ends[0]


test_message.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def records(ends: Iterable[CloudEvent]) -> list[ArtifactRecord]:
    """The ``--json`` records of terminal and DLQ events."""
    return [record_from_event(end) for end in ends]


__all__ = [
    "KINDS",
    "StageContractError",
    "StageRunner",
    "check_contracts",
    "classification",
    "classified",
    "event",
    "event_types",
    "ingest",
    "ingest_file",
    "records",
    "run_stages",
    "stored_artifact",
    "test_message",
]
