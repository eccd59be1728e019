"""Build ``system.ingest.classified`` events for payloads put into an object store."""

from __future__ import annotations

from typing import Any

from thunderline.events import INGEST_CLASSIFIED, CloudEvent, new_event
from thunderline.objects.base import ObjectStore

KINDS: dict[str, dict[str, Any]] = {
    "png": {"label": "png", "group": "image", "mime": "image/png", "is_text": False},
    "jpeg": {"label": "jpeg", "group": "image", "mime": "image/jpeg", "is_text": False},
    "txt": {"label": "txt", "group": "text", "mime": "text/plain", "is_text": True},
    "zip": {"label": "zip", "group": "archive", "mime": "application/zip", "is_text": False},
    "svg": {"label": "svg", "group": "image", "mime": "image/svg+xml", "is_text": True},
}


def classified_event(
    store: ObjectStore, data: bytes, kind: str = "png", *, route: list[str] | None = None
) -> CloudEvent:
    """The event the classify stage would emit for ``data`` (stored in ``store``)."""
    stored = store.put_bytes(data)
    classification = {
        **KINDS[kind],
        "score": 0.99,
        "description": kind,
        "dl_label": KINDS[kind]["label"],
        "overwrite_reason": "none",
        "model": "test",
    }
    return new_event(
        INGEST_CLASSIFIED,
        {
            "artifact": {
                "name": f"sample.{kind}",
                "path": None,
                "size": stored.size,
                "sha256": stored.sha256,
                "payload_ref": stored.ref,
                "source": f"test://sample.{kind}",
            },
            "classification": classification,
            "route": route if route is not None else ["infer"],
        },
        source="urn:thunderline:stage:classify",
    )
