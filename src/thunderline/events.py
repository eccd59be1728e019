"""CloudEvents 1.0 envelope with Thunderline's ``correlationid`` and ``causationid`` extensions.

An event is immutable. :func:`new_event` starts a correlation chain (an ingest);
:meth:`CloudEvent.derive` makes the next event of a chain: same ``correlationid``, ``causationid``
set to the parent's ``id``. Event ids are UUIDv7, so they sort by creation time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from uuid6 import uuid7

from thunderline import names
from thunderline.errors import MalformedEventError

SPECVERSION: Final = "1.0"
DEFAULT_SOURCE: Final = "urn:thunderline"

# Event types (ARCHITECTURE §2).
INGEST_RECEIVED: Final = "ui.command.ingest.received"
INGEST_CLASSIFIED: Final = "system.ingest.classified"
NLP_PROCESSED: Final = "system.nlp.processed"
EXTRACT_COMPLETED: Final = "system.extract.completed"
INFERENCE_COMPLETED: Final = "system.ml.inference.completed"
VOXEL_CREATED: Final = "system.voxel.created"
DLQ_CLASSIFY: Final = "system.dlq.classify_failed"
DLQ_NLP: Final = "system.dlq.nlp_failed"
DLQ_EXTRACT: Final = "system.dlq.extract_failed"
DLQ_INFERENCE: Final = "system.dlq.ml_inference_failed"
DLQ_VOXEL: Final = "system.dlq.voxel_failed"
DLQ_OVERLOAD: Final = "system.dlq.overload"
DLQ_PREFIX: Final = "system.dlq."


def new_id() -> str:
    """A new time-sortable event id (UUIDv7)."""
    return str(uuid7())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class CloudEvent(BaseModel):
    """One event. ``data`` is a JSON object; extensions beyond ours are kept as they come."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: str = SPECVERSION
    id: str = Field(default_factory=new_id, min_length=1)
    source: str = Field(DEFAULT_SOURCE, min_length=1)
    type: str = Field(min_length=1)
    time: str = Field(default_factory=_now)
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)
    correlationid: str = Field(min_length=1)
    causationid: str | None = None
    #: The validated data model (:mod:`thunderline.eventdata`), set once it has been checked.
    _typed_data: Any = PrivateAttr(None)

    def __eq__(self, other: object) -> bool:
        """Equal when every field is (the cached typed data is not part of the event)."""
        if not isinstance(other, CloudEvent):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # data is a dict: events are not hashable

    @field_validator("specversion")
    @classmethod
    def _check_specversion(cls, value: str) -> str:
        if value != SPECVERSION:
            raise ValueError(f"unsupported specversion {value!r} (expected {SPECVERSION})")
        return value

    @field_validator("time")
    @classmethod
    def _check_time(cls, value: str) -> str:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"time is not RFC 3339: {value!r}") from exc
        return value

    # ---- construction -------------------------------------------------------------------
    def derive(self, type: str, data: dict[str, Any], *, source: str | None = None) -> CloudEvent:
        """The next event in this chain: same correlation id, caused by this event."""
        return CloudEvent(
            type=type,
            source=source or self.source,
            data=data,
            correlationid=self.correlationid,
            causationid=self.id,
        )

    # ---- routing slip -------------------------------------------------------------------
    @property
    def route(self) -> list[str]:
        """The stages still to run, in order (the routing slip)."""
        route = self.data.get("route", [])
        return list(route) if isinstance(route, list) else []

    @property
    def is_dlq(self) -> bool:
        """True for a dead-letter event (its type starts with the DLQ prefix)."""
        return self.type.startswith(DLQ_PREFIX)

    # ---- encoding -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The event as a mapping, without an unset ``causationid``."""
        out = self.model_dump()
        if out["causationid"] is None:
            del out["causationid"]
        return out

    def to_json(self) -> str:
        """Wire JSON (:mod:`thunderline.names`): names with undecodable bytes round-trip."""
        return names.dumps(self.to_dict(), separators=(",", ":"))

    def to_bytes(self) -> bytes:
        """The event as UTF-8 JSON bytes (what the bus carries)."""
        return self.to_json().encode("utf-8")

    @classmethod
    def from_dict(cls, raw: Any) -> CloudEvent:
        """Validate a mapping; anything invalid raises :class:`MalformedEventError`."""
        if not isinstance(raw, dict):
            raise MalformedEventError(
                f"event must be a JSON object, got {type(raw).__name__}", details={"raw": raw}
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                for e in exc.errors()
            )
            raise MalformedEventError(f"malformed event: {problems}", details={"raw": raw}) from exc

    @classmethod
    def from_json(cls, raw: str | bytes) -> CloudEvent:
        """Decode JSON text or bytes; anything invalid raises :class:`MalformedEventError`."""
        try:
            decoded = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            raise MalformedEventError(f"event is not JSON: {exc}", details={"raw": text}) from exc
        return cls.from_dict(decoded)


def new_event(type: str, data: dict[str, Any], *, source: str = DEFAULT_SOURCE) -> CloudEvent:
    """Start a new correlation chain: the event's id is also its correlation id."""
    event_id = new_id()
    return CloudEvent(id=event_id, type=type, source=source, data=data, correlationid=event_id)


def dlq_type_for(stage: str) -> str:
    """The DLQ event type of a stage (``infer`` and ``package`` keep the design's names)."""
    return {
        "classify": DLQ_CLASSIFY,
        "nlp": DLQ_NLP,
        "extract": DLQ_EXTRACT,
        "infer": DLQ_INFERENCE,
        "package": DLQ_VOXEL,
    }.get(stage, f"{DLQ_PREFIX}{stage}_failed")
