"""Build ``system.ingest.classified`` events for payloads put into an object store."""

from __future__ import annotations

from thunderline.events import CloudEvent
from thunderline.objects.base import ObjectStore
from thunderline.testing import classified


def classified_event(
    store: ObjectStore, data: bytes, kind: str = "png", *, route: list[str] | None = None
) -> CloudEvent:
    """The event the classify stage would emit for ``data`` (stored in ``store``)."""
    return classified(
        store,
        data,
        kind,
        name=f"sample.{kind}",
        source=f"test://sample.{kind}",
        route=route if route is not None else ["infer"],
    )
