"""Builders of realistic events for the voxel tests (bytes really stored, events really derived)."""

from __future__ import annotations

from typing import Any

from thunderline.events import INGEST_CLASSIFIED, INGEST_RECEIVED, CloudEvent, new_event
from thunderline.objects.base import ObjectStore


def classified_event(
    store: ObjectStore,
    data: bytes,
    *,
    name: str = "a.txt",
    source: str | None = None,
    label: str = "txt",
    group: str = "text",
    parent: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    route: list[str] | None = None,
) -> CloudEvent:
    """An ingest event and the ``system.ingest.classified`` event derived from it."""
    stored = store.put_bytes(data)
    artifact = {
        "name": name,
        "path": None,
        "size": stored.size,
        "sha256": stored.sha256,
        "payload_ref": stored.ref,
        "source": source if source is not None else f"file:///data/{name}",
    }
    ingest_data: dict[str, Any] = {"artifact": artifact, "route": ["classify"]}
    if parent is not None:
        ingest_data["parent"] = parent
    ingest = new_event(INGEST_RECEIVED, ingest_data, source="urn:thunderline:test")
    classification = {
        "label": label,
        "group": group,
        "mime": "text/plain" if group == "text" else "application/octet-stream",
        "score": 0.99,
        "is_text": group == "text",
        "description": label,
        "dl_label": label,
        "overwrite_reason": "none",
        "model": "standard_v3_3",
    }
    return ingest.derive(
        INGEST_CLASSIFIED,
        {
            **ingest.data,
            **(extra or {}),
            "classification": classification,
            "route": route if route is not None else ["package"],
        },
        source="urn:thunderline:stage:classify",
    )
