"""Build a voxel from the event that reaches the package stage.

* **coords** -- ``data["coords"]`` when the event carries one (``{t,x,y,z}`` or
  ``{t,channel,position}``), else ``{t: event time, channel: content group, position: member
  index in the parent archive or 0}``.
* **traits** -- the classification, extraction (text reference, metadata, parts), NLP and
  inference results the earlier stages added.
* **lineage** -- parent events from the correlation/causation chain (the packaged event, the
  event that caused it, the archive voxel's event for archive members, the ingest that started
  the chain) and parent voxels from ``data["parent"]["voxel_id"]``. The builder refuses a voxel
  that names itself as a parent or whose parents already descend from it.
* **checksums** -- payload SHA-256 from the artifact, metadata SHA-256 of the canonical JSON.
* **failures / skipped** -- ``traits["failures"]``: each stage after classify that failed for
  good (stage, reason, error type, message, DLQ record id), the artifact stored without its
  result; ``traits["skipped"]``: each stage that did not apply or did not run (stage, reason:
  ``infer``: "skipped: no model ...", ``nlp``: "skipped: extract failed").
* **completion** -- a replay that completes a stored voxel (``previous``) keeps its id, time,
  coordinates and parent voxels, and adds the new events to its parent events.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from uuid6 import uuid7

from thunderline import names
from thunderline.eventdata import Classified, data_of
from thunderline.events import CloudEvent
from thunderline.voxel.errors import InvalidVoxelError, LineageCycleError
from thunderline.voxel.schema import SCHEMA_VERSION, Voxel, seal

#: Result keys copied from the event into ``traits`` (ARCHITECTURE: classify, extract, nlp,
#: infer). ``traits["extract"]["text_ref"]`` names the extracted text in the object store.
TRAIT_KEYS = ("classification", "extract", "nlp", "inference")

AncestorLookup = Callable[[str], set[str]]


def _unique(values: list[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def voxel_source(event: CloudEvent, data: Classified) -> str:
    r"""What the voxel is "of": the artifact's source URI, else its correlation chain.

    Bytes-safe (:func:`names.wire_text`): an undecodable byte of a name (a tar member's
    Latin-1 name, say) is written as a ``\udcXX`` escape, so the source is strict UTF-8 like
    every other text field of the sealed document; the exact name stays in
    ``traits.artifact``.
    """
    source = data.artifact.source
    return (
        names.wire_text(source) if source else f"urn:thunderline:correlation:{event.correlationid}"
    )


def coords_for(event: CloudEvent, data: Classified) -> dict[str, Any]:
    """The event's own ``coords`` if given, else ``{t, channel, position}`` from the event."""
    if data.coords is not None:
        return dict(data.coords)
    t = datetime.fromisoformat(event.time.replace("Z", "+00:00")).timestamp()
    channel = data.classification.group or "unknown"
    position = data.parent.index if data.parent is not None else 0
    return {"t": t, "channel": channel, "position": position}


class VoxelBuilder:
    """Turns a packaged event into a sealed :class:`Voxel` (pure: no I/O of its own).

    Args:
        ancestors_of: ``ancestors_of(voxel_id)`` returns the ancestor ids of a stored voxel
            (for the acyclicity check); without it only self-parenthood is checked.
    """

    def __init__(self, ancestors_of: AncestorLookup | None = None) -> None:
        self.ancestors_of = ancestors_of

    def build(
        self, event: CloudEvent, *, voxel_id: str | None = None, previous: Voxel | None = None
    ) -> Voxel:
        """The sealed voxel for ``event`` (a classified event with typed data).

        With ``previous`` (a replay completing a stored voxel) the voxel keeps its id, ``ts``,
        ``coords`` and parent events.

        Raises:
            InvalidVoxelError: the voxel's fields do not validate.
            LineageCycleError: a parent is the voxel itself or descends from it.
            MalformedEventError: the event's data does not validate as classified data.
        """
        data = data_of(event, Classified)
        artifact = data.artifact
        vid = previous.id if previous is not None else voxel_id or str(uuid7())
        parent = data.parent
        parent_voxels = (parent.voxel_id,) if parent is not None else ()
        # an id minted just now is in no stored lineage: only a given id needs the walk up
        # its parent's ancestors (one recursive query per archive member otherwise)
        self.check_acyclic(vid, parent_voxels, stored=voxel_id is not None)
        traits: dict[str, Any] = {
            name: value.model_dump(mode="json", exclude_none=True)
            for name in TRAIT_KEYS
            if (value := getattr(data, name, None)) is not None
        }
        traits["artifact"] = {
            "name": artifact.name,
            "source": artifact.source,
            "size": artifact.size,
        }
        if data.failures:
            traits["failures"] = [failure.mark() for failure in data.failures]
        if data.notes:
            traits["skipped"] = [{"stage": n.stage, "reason": n.note} for n in data.notes]
        fields: dict[str, Any] = {
            "id": vid,
            "ts": datetime.fromisoformat(event.time.replace("Z", "+00:00")),
            "source": voxel_source(event, data),
            "coords": coords_for(event, data),
            "traits": traits,
            "payload_ref": artifact.payload_ref,
            "payload_size": artifact.size,
            "checksums": {"payload_sha256": artifact.sha256},
            "lineage": {
                "parent_event_ids": _unique(
                    [
                        event.id,
                        event.causationid,
                        parent.event_id if parent is not None else None,
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
        if previous is not None:
            fields["ts"] = previous.ts
            fields["coords"] = previous.coords.model_dump()
            fields["lineage"]["parent_event_ids"] = _unique(
                [*previous.lineage.parent_event_ids, *fields["lineage"]["parent_event_ids"]]
            )
        try:
            # traits: dumps of the event's typed data (mode="json") and plain str/int values
            return seal(fields, json_traits=True)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                for e in exc.errors()
            )
            raise InvalidVoxelError(f"invalid voxel: {problems}") from exc

    def check_acyclic(
        self, voxel_id: str, parent_ids: tuple[str, ...], *, stored: bool = True
    ) -> None:
        """Refuse parents that are the voxel itself or already descend from it.

        ``stored=False``: ``voxel_id`` was just minted (a new UUIDv7), so no stored voxel can
        descend from it and the ancestors are not looked up.
        """
        for parent in parent_ids:
            if parent == voxel_id:
                raise LineageCycleError(f"voxel {voxel_id} cannot be its own parent")
            if stored and self.ancestors_of is not None and voxel_id in self.ancestors_of(parent):
                raise LineageCycleError(
                    f"voxel {voxel_id} is an ancestor of its parent {parent}: that is a cycle",
                    details={"voxel_id": voxel_id, "parent_id": parent},
                )
