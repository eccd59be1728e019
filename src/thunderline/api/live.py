"""Live events for the API: a fan-out hub (Server-Sent Events) and a per-ingest progress tracker.

In the embedded mode every event the pipeline publishes passes through its journal; the
:class:`EventTap` stands in front of the journal (same three methods), writes through to it and
hands each event to the :class:`EventHub`. The hub feeds the :class:`IngestTracker` (stages done
and outcome per correlation id) and every SSE subscriber's bounded queue; a subscriber that does
not keep up loses events (counted and told with a ``lagged`` event), never the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thunderline.events import (
    INFERENCE_COMPLETED,
    INGEST_CLASSIFIED,
    INGEST_RECEIVED,
    NLP_PROCESSED,
    VOXEL_CREATED,
    CloudEvent,
)
from thunderline.journal import Journal

#: Event type -> the stage whose completion it reports.
STAGE_OF: dict[str, str] = {
    INGEST_CLASSIFIED: "classify",
    NLP_PROCESSED: "nlp",
    INFERENCE_COMPLETED: "infer",
    VOXEL_CREATED: "package",
}
SUBSCRIBER_QUEUE = 1000
STAGE_ORDER = ("classify", "nlp", "infer", "package")


@dataclass(eq=False)
class Subscriber:
    """One live-event listener: a bounded queue, optionally for one correlation id."""

    correlation_id: str | None
    queue: asyncio.Queue[CloudEvent | None] = field(
        default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE)
    )
    lagged: int = 0


class EventHub:
    """Fan-out of published events to subscribers (all on the event loop's thread)."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self._listeners: list[Callable[[CloudEvent], None]] = []

    def add_listener(self, listener: Callable[[CloudEvent], None]) -> None:
        """Call ``listener`` with every published event (before the subscribers)."""
        self._listeners.append(listener)

    def subscribe(self, correlation_id: str | None = None) -> Subscriber:
        """A new subscriber, for every event or those of one correlation id."""
        sub = Subscriber(correlation_id)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Remove a subscriber (its stream ended)."""
        self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        """How many subscribers are connected."""
        return len(self._subscribers)

    def publish(self, event: CloudEvent) -> None:
        """Hand an event to the listeners and the matching subscribers (a full queue counts a lag)."""
        for listener in self._listeners:
            listener(event)
        for sub in list(self._subscribers):
            if sub.correlation_id is not None and sub.correlation_id != event.correlationid:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.lagged += 1

    def close(self) -> None:
        """End every subscriber's stream."""
        for sub in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)


class EventTap:
    """A journal stand-in that also publishes each recorded event to a hub."""

    def __init__(self, journal: Journal, hub: EventHub) -> None:
        self.journal = journal
        self.hub = hub

    def record(self, event: CloudEvent, encoded: bytes | None = None) -> None:
        """Write the event to the journal and publish it to live subscribers.

        A dead letter is not published here: it is an outcome, shown once the collector has
        recorded it (:meth:`recorded`), so an ingest the live view or ``GET /v1/ingest/{id}``
        calls dead-lettered is already in the DLQ listing and counted by the open-DLQ gauge.
        """
        self.journal.record(event, encoded)
        if not event.is_dlq:
            self.hub.publish(event)

    def recorded(self, event: CloudEvent) -> None:
        """Publish a terminal event the collector has just recorded (dead letters only)."""
        if event.is_dlq:
            self.hub.publish(event)

    def flush(self) -> None:
        """Flush the journal."""
        self.journal.flush()

    def close(self) -> None:
        """Close the journal."""
        self.journal.close()


@dataclass
class IngestProgress:
    """What is known of one ingest (one correlation id, archive members included)."""

    correlation_id: str
    name: str | None = None
    submitted: str | None = None
    open: int = 0
    stages_done: list[str] = field(default_factory=list)
    voxel_ids: list[str] = field(default_factory=list)
    dlq: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    #: DLQ records a degraded voxel names that are not recorded yet (the artifact stays open).
    awaiting: set[str] = field(default_factory=set)

    @property
    def outcome(self) -> str:
        """``pending``, ``partial``, ``failed`` or ``ok`` from the counts so far."""
        if self.open > 0:
            return "pending"
        if self.dlq and self.voxel_ids:
            if all(d.get("voxel_id") for d in self.dlq):
                return "degraded"  # every failure left its voxel
            return "partial"
        if self.dlq:
            return "dead_lettered"
        if self.voxel_ids:
            return "stored"
        return "pending"


class IngestTracker:
    """Progress per correlation id, newest ``capacity`` ingests kept (in memory)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, IngestProgress] = OrderedDict()

    def get(self, correlation_id: str) -> IngestProgress | None:
        """The progress of one ingest, or ``None`` when unknown."""
        return self._items.get(correlation_id)

    def _entry(self, correlation_id: str) -> IngestProgress:
        item = self._items.get(correlation_id)
        if item is None:
            item = self._items[correlation_id] = IngestProgress(correlation_id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return item

    def __call__(self, event: CloudEvent) -> None:
        """Count one event into the progress of its correlation id."""
        item = self._entry(event.correlationid)
        item.events += 1
        if event.type == INGEST_RECEIVED:
            if not event.data.get("parent"):  # archive members were counted with their parent
                item.open += 1
            artifact = event.data.get("artifact") or {}
            if item.name is None and isinstance(artifact, dict):
                item.name = artifact.get("name")
                item.submitted = event.time
            return
        stage = STAGE_OF.get(event.type)
        if stage is not None and stage not in item.stages_done:
            item.stages_done.append(stage)
        if event.type == VOXEL_CREATED:
            voxel = event.data.get("voxel") or {}
            children = 0
            if isinstance(voxel, dict):
                if voxel.get("id"):
                    item.voxel_ids.append(str(voxel["id"]))
                children = voxel.get("children") or 0
            # an archive's members are open from now on, before their own events are published
            item.open = max(item.open - 1, 0) + (children if isinstance(children, int) else 0)
            # a degraded voxel's DLQ records are outcomes too: open until they are recorded
            seen = {d["id"] for d in item.dlq}
            for failure in event.data.get("failures") or []:
                dlq_id = failure.get("dlq_id") if isinstance(failure, dict) else None
                if dlq_id and dlq_id not in seen and dlq_id not in item.awaiting:
                    item.awaiting.add(str(dlq_id))
                    item.open += 1
        elif event.is_dlq:
            error = event.data.get("error") or {}
            item.dlq.append(
                {
                    "id": event.id,
                    "stage": event.data.get("stage"),
                    "reason": event.data.get("reason"),
                    "message": error.get("message") if isinstance(error, dict) else None,
                    "voxel_id": event.data.get("voxel_id"),
                }
            )
            if not event.data.get("voxel_id"):  # else the voxel ended the artifact
                item.open = max(item.open - 1, 0)
            elif event.id in item.awaiting:  # the degraded voxel's record, now recorded
                item.awaiting.discard(event.id)
                item.open = max(item.open - 1, 0)
