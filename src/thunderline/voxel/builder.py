"""Build a voxel from the event that reaches the package stage.

* **coords** -- ``data["coords"]`` when the event carries one (``{t,x,y,z}`` or
  ``{t,channel,position}``), else ``{t: event time, channel: content group, position: member
  index in the parent archive or 0}``.
* **traits** -- the classification, NLP and inference results the earlier stages added.
* **lineage** -- parent events from the correlation/causation chain (the packaged event, the
  event that caused it, the archive voxel's event for archive members, the ingest that started
  the chain) and parent voxels from ``data["parent"]["voxel_id"]``. The builder refuses a voxel
  that names itself as a parent or whose parents already descend from it.
* **checksums** -- payload SHA-256 from the artifact, metadata SHA-256 of the canonical JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from uuid6 import uuid7

from thunderline.events import CloudEvent
from thunderline.objects.base import sha_from_ref
from thunderline.voxel.errors import InvalidVoxelError, LineageCycleError
from thunderline.voxel.schema import SCHEMA_VERSION, Voxel, seal

#: Result keys copied from the event into ``traits`` (ARCHITECTURE: classify, nlp, infer).
TRAIT_KEYS = ("classification", "nlp", "inference")

AncestorLookup = Callable[[str], set[str]]


def _unique(values: list[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def voxel_source(event: CloudEvent) -> str:
    """What the voxel is "of": the artifact's source URI, else its correlation chain."""
    artifact = event.data.get("artifact") or {}
    source = artifact.get("source") if isinstance(artifact, dict) else None
    return str(source) if source else f"urn:thunderline:correlation:{event.correlationid}"


def coords_for(event: CloudEvent) -> dict[str, Any]:
    """The event's own ``coords`` if given, else ``{t, channel, position}`` from the event."""
    given = event.data.get("coords")
    if isinstance(given, dict):
        return dict(given)
    t = datetime.fromisoformat(event.time.replace("Z", "+00:00")).timestamp()
    classification = event.data.get("classification") or {}
    channel = str(classification.get("group") or "unknown") if classification else "unknown"
    parent = event.data.get("parent") or {}
    position = int(parent.get("index", 0)) if isinstance(parent, dict) else 0
    return {"t": t, "channel": channel, "position": position}


class VoxelBuilder:
    """Turns a packaged event into a sealed :class:`Voxel` (pure: no I/O of its own)."""

    def __init__(self, ancestors_of: AncestorLookup | None = None) -> None:
        """``ancestors_of(voxel_id)`` returns the ancestor ids of a stored voxel (for the
        acyclicity check); without it only self-parenthood is checked."""
        self.ancestors_of = ancestors_of

    def build(self, event: CloudEvent, *, voxel_id: str | None = None) -> Voxel:
        """The voxel for ``event``; raises InvalidVoxelError or LineageCycleError."""
        data = event.data
        artifact = data.get("artifact")
        if not isinstance(artifact, dict):
            raise InvalidVoxelError("event has no artifact object")
        ref = artifact.get("payload_ref")
        if not ref:
            raise InvalidVoxelError("artifact has no payload_ref (was it classified and stored?)")
        try:
            payload_sha = sha_from_ref(str(ref))
        except ValueError as exc:
            raise InvalidVoxelError(str(exc)) from exc
        size = artifact.get("size")
        if not isinstance(size, int) or size < 0:
            raise InvalidVoxelError(f"artifact size {size!r} is not a byte count")

        vid = voxel_id or str(uuid7())
        parent = data.get("parent") if isinstance(data.get("parent"), dict) else {}
        parent_voxels = _unique([parent.get("voxel_id")]) if parent else ()
        self.check_acyclic(vid, parent_voxels)
        traits: dict[str, Any] = {k: data[k] for k in TRAIT_KEYS if data.get(k) is not None}
        traits["artifact"] = {
            "name": artifact.get("name"),
            "source": artifact.get("source"),
            "size": size,
        }
        fields: dict[str, Any] = {
            "id": vid,
            "ts": datetime.fromisoformat(event.time.replace("Z", "+00:00")),
            "source": voxel_source(event),
            "coords": coords_for(event),
            "traits": traits,
            "payload_ref": f"sha256:{payload_sha}",
            "payload_size": size,
            "checksums": {"payload_sha256": payload_sha},
            "lineage": {
                "parent_event_ids": _unique(
                    [
                        event.id,
                        event.causationid,
                        parent.get("event_id") if parent else None,
                        event.correlationid,
                    ]
                ),
                "parent_voxel_ids": parent_voxels,
            },
            "correlation_id": event.correlationid,
            "causation_id": event.causationid,
            "event_id": event.id,
            "schema_version": SCHEMA_VERSION,
        }
        try:
            return seal(fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                for e in exc.errors()
            )
            raise InvalidVoxelError(f"invalid voxel: {problems}") from exc

    def check_acyclic(self, voxel_id: str, parent_ids: tuple[str, ...]) -> None:
        """Refuse parents that are the voxel itself or already descend from it."""
        for parent in parent_ids:
            if parent == voxel_id:
                raise LineageCycleError(f"voxel {voxel_id} cannot be its own parent")
            if self.ancestors_of is not None and voxel_id in self.ancestors_of(parent):
                raise LineageCycleError(
                    f"voxel {voxel_id} is an ancestor of its parent {parent}: that is a cycle",
                    details={"voxel_id": voxel_id, "parent_id": parent},
                )
