"""Builders of realistic events for the voxel tests (over :mod:`thunderline.testing`)."""

from __future__ import annotations

from typing import Any

from thunderline.eventdata import Classification, Parent
from thunderline.events import CloudEvent
from thunderline.objects.base import ObjectStore
from thunderline.testing import classified


def classified_event(
    store: ObjectStore,
    data: bytes,
    *,
    name: str = "a.txt",
    source: str | None = None,
    label: str = "txt",
    group: str = "text",
    parent: dict[str, Any] | None = None,
    route: list[str] | None = None,
) -> CloudEvent:
    """An ingest event and the ``system.ingest.classified`` event derived from it."""
    result = Classification(
        label=label,
        group=group,
        mime="text/plain" if group == "text" else "application/octet-stream",
        score=0.99,
        is_text=group == "text",
        description=label,
        dl_label=label,
        overwrite_reason="none",
        model="standard_v3_3",
    )
    return classified(
        store,
        data,
        name=name,
        source=source,
        route=route if route is not None else ["package"],
        parent=Parent(**{"index": 0, **parent}) if parent is not None else None,
        result=result,
    )
