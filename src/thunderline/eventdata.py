"""Typed event data: one pydantic model per event type's ``data``, and the type -> model registry.

The wire form is unchanged: ``CloudEvent.data`` stays a JSON object with the field names below.
The engine validates it once, when it decodes a message for a stage (:func:`validate_data`);
a message whose data does not fit its type's model is dead-lettered as ``malformed_event``
with the validation errors. Stages read the validated model with :func:`data_of` and publish
typed data through :meth:`~thunderline.flow.stage.Stage.advance`; an output whose data is not
its type's model is a :class:`~thunderline.errors.EventContractError` (a bug).

Data accumulates along the route (each stage adds its result to what it received), so the
models extend each other::

    Routed                      route (a new stage's data extends it)
    IngestRequest               artifact, route, parent?, coords?
    └── Classified              + classification           (artifact now stored)
        ├── Extracted           + extract (text_ref, metadata, parts; every later model
        │                         carries it on: ``Classified.extract``)
        ├── NlpProcessed        + nlp
        ├── InferenceCompleted  + inference (+ nlp when nlp ran first)
        └── VoxelCreated        + voxel     (+ nlp, inference when they ran)
    DlqRecord                   stage, reason, error, traceback, attempts, original(_raw)

Artifact ``name``, ``path``, ``root`` and ``source`` are opaque strings: a path decoded with
``os.fsdecode`` may hold surrogate escapes, and no validator here looks inside them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from thunderline.errors import EventContractError, MalformedEventError
from thunderline.events import (
    DLQ_PREFIX,
    EXTRACT_COMPLETED,
    INFERENCE_COMPLETED,
    INGEST_CLASSIFIED,
    INGEST_RECEIVED,
    NLP_PROCESSED,
    VOXEL_CREATED,
    CloudEvent,
    new_event,
)
from thunderline.extract.result import ExtractSummary
from thunderline.nlp.result import NlpResult

Sha256 = Annotated[str, Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")]
PayloadRef = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]


class _Model(BaseModel):
    """Frozen, closed: an unknown field is a contract error, not silently carried on."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ---- parts -----------------------------------------------------------------------------------
class Artifact(_Model):
    """The input an ingest names: a local file (``path``) or stored bytes (``payload_ref``).

    ``name``, ``path``, ``root`` and ``source`` are opaque (surrogate escapes allowed).
    ``size``, ``sha256`` and ``payload_ref`` are filled when the bytes are stored (classify).
    """

    name: str = Field(description="File or member name (display only).")
    path: str | None = Field(None, description="Local path of the input, when it is a file.")
    root: str | None = Field(None, description="The folder the input was found under.")
    size: int | None = Field(None, ge=0, description="Payload size in bytes, once stored.")
    sha256: Sha256 | None = Field(None, description="Payload SHA-256, once stored.")
    payload_ref: PayloadRef | None = Field(None, description="`sha256:<hex>`, once stored.")
    source: str | None = Field(
        None, description="Where it came from: a URI (`file://...`, `<archive>!/<member>`)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Artifact:
        refs = self.payload_ref is not None and self.sha256 is not None
        if refs and self.payload_ref != f"sha256:{self.sha256}":
            raise ValueError("payload_ref does not match sha256")
        if self.path is None and self.payload_ref is None:
            raise ValueError("an artifact needs a path or a payload_ref")
        return self


class StoredArtifact(Artifact):
    """An artifact whose bytes are in the object store (every event after classify)."""

    size: int = Field(ge=0, description="Payload size in bytes.")
    sha256: Sha256 = Field(description="Payload SHA-256.")
    payload_ref: PayloadRef = Field(description="`sha256:<hex>`.")


class Parent(_Model):
    """For an archive member: the archive's voxel and the event that created it."""

    voxel_id: str = Field(min_length=1)
    event_id: str = Field(min_length=1)
    index: int = Field(ge=0, description="Member index inside the archive.")
    depth: int = Field(1, ge=1, description="Archive nesting depth of this member.")


class Classification(_Model):
    """What Magika said about one artifact."""

    label: str
    group: str
    mime: str
    score: float = Field(ge=0.0, le=1.0)
    is_text: bool
    description: str
    dl_label: str
    overwrite_reason: str
    model: str
    latency_ms: float | None = Field(
        None, ge=0.0, description="Classify time of this file: admitted (stored) -> classified."
    )
    queue_wait_ms: float | None = Field(
        None, ge=0.0, description="Wait before the classify stage took the file up."
    )

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, without unset fields."""
        return self.model_dump(mode="json", exclude_none=True)


class ExtractionInfo(BaseModel):
    """How the text of an artifact was extracted (everything but the text)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    method: str
    encoding: str | None = None
    truncated: bool = False
    bytes_in: int = Field(0, ge=0)
    chars: int = Field(0, ge=0)
    pages: int | None = None


class NlpAnalysis(NlpResult):
    """The NLP stage's result: :class:`~thunderline.nlp.result.NlpResult` plus its extraction."""

    extraction: ExtractionInfo | None = None


class LabelScore(_Model):
    """One label of a model with its score."""

    label: str
    score: float


class Inference(_Model):
    """The infer stage's result: model, version and the top labels."""

    model: str
    version: str
    top_k: list[LabelScore]
    inference_ms: float = Field(ge=0.0)
    batch_size: int = Field(1, ge=1)
    confident: bool = Field(
        True,
        description="False: the best score is below the model's threshold -- 'no confident "
        "label' (the raw scores are kept in top_k).",
    )
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="The model's min_confidence (registry), if it has one."
    )


class VoxelChecksums(_Model):
    """The SHA-256 of the payload and of the voxel's canonical metadata."""

    payload_sha256: Sha256
    metadata_sha256: Sha256


class VoxelLineage(_Model):
    """The events and voxels a voxel was made from (its parents in the lineage graph)."""

    parent_event_ids: list[str] = Field(default_factory=list)
    parent_voxel_ids: list[str] = Field(default_factory=list)


#: ``{t, x, y, z}`` or ``{t, channel, position}`` (checked by :class:`~thunderline.voxel.Voxel`).
Coords = dict[str, float | int | str]


class VoxelSummary(_Model):
    """What ``system.voxel.created`` says about the stored voxel."""

    id: str = Field(min_length=1)
    payload_ref: PayloadRef
    payload_size: int = Field(ge=0)
    checksums: VoxelChecksums
    coords: Coords
    lineage: VoxelLineage
    label: str | None = None
    source: str
    correlation_id: str
    causation_id: str | None = None
    schema_version: int
    created: bool = Field(description="False when an identical voxel already existed.")
    children: int = Field(0, ge=0, description="Archive members sent on as new ingests.")
    duplicate_of: str | None = Field(
        None,
        description="The voxel that already held these bytes from another source "
        "(`TL_DUPLICATE_POLICY`: with `link` this event names that voxel, with `flag` a new one).",
    )
    revision: int = Field(
        1,
        ge=1,
        description="1 for a new voxel; above 1 when a replay completed a stored voxel "
        "(the previous documents are kept in `voxel_revisions`).",
    )


class ErrorInfo(BaseModel):
    """The exception of a DLQ record."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


# ---- event data ------------------------------------------------------------------------------
class EventData(_Model):
    """Base of every event's data."""

    #: Leave unset optional fields out of the wire JSON (``"parent"`` absent, not ``null``).
    wire_exclude_none: ClassVar[bool] = True


class Note(_Model):
    """Why a stage passed an artifact on without its result (it did not apply)."""

    stage: str = Field(description="The stage that passed it on.")
    note: str = Field(description="What it said (an SVG for a raster model, a link in a tar).")


class StageFailure(_Model):
    """A stage after classify that failed for good.

    The artifact went on to ``package`` without its result ("degrade, don't drop"), carrying this
    mark and its DLQ record.
    """

    stage: str = Field(description="The stage that failed.")
    reason: str = Field(description="The DLQ reason (`extraction_failed`, `timeout`, ...).")
    error_type: str = Field(description="The exception's type name.")
    message: str = Field(description="The exception's message.")
    dlq_id: str = Field(min_length=1, description="The id of the DLQ record of this failure.")
    record: dict[str, Any] | None = Field(
        None,
        description="The DLQ record (the whole event) on its way to the package stage, which "
        "publishes it naming the voxel; absent from the voxel and the terminal event.",
    )

    def mark(self) -> dict[str, Any]:
        """The mark as the voxel and the record hold it (without the carried DLQ record)."""
        return self.model_dump(mode="json", exclude={"record"})


class Routed(EventData):
    """Data that travels to stages: ``route`` is the routing slip (the stages still to run)."""

    route: list[str] = Field(default_factory=list, description="Stages still to run.")
    notes: list[Note] | None = Field(
        None, description="Stages that did not apply to the artifact and passed it on."
    )
    failures: list[StageFailure] | None = Field(
        None,
        description="Stages after classify that failed for good: the artifact went on to "
        "`package` without their result (each has a DLQ record naming the voxel).",
    )


class IngestRequest(Routed):
    """``ui.command.ingest.received``: an artifact to process."""

    artifact: Artifact = Field(description="The input: a local file or stored bytes.")
    route: list[str] = Field(
        default_factory=lambda: ["classify"], description="Stages still to run."
    )
    parent: Parent | None = Field(None, description="Set for an archive member.")
    coords: Coords | None = Field(None, description="Voxel coordinates given by the producer.")


class ReprocessMark(_Model):
    """A stage run again over a stored voxel by ``thunderline reprocess`` (not an ingest)."""

    run_id: str = Field(description="The reprocess run (``reprocess_runs.id``).")
    voxel_id: str = Field(description="The stored voxel whose stage is run again.")
    stage: str = Field(description="The stage run again: extract, nlp or infer.")
    model: str | None = Field(
        None,
        description="``NAME@VERSION`` the run pins (the ONNX model or the spaCy pipeline); a "
        "stage that cannot run it fails the event (``model_pin``).",
    )


class Classified(IngestRequest):
    """``system.ingest.classified``: stored and classified; ``route`` chosen from the label."""

    artifact: StoredArtifact = Field(description="The input, its bytes now stored.")
    classification: Classification = Field(description="Magika's result.")
    route: list[str] = Field(default_factory=list, description="Stages still to run.")
    extract: ExtractSummary | None = Field(
        None, description="Set once the extract stage ran: text reference, metadata, parts."
    )
    voxel_id: str | None = Field(
        None,
        description="The stored voxel this run completes: a replay of a stage that failed "
        "after the voxel was stored without its result (the package stage updates it).",
    )
    reprocess: ReprocessMark | None = Field(
        None,
        description="Set when a reprocess run sent the event: the stage's result becomes a new "
        "result version of the voxel (on a broker the workers' collector records it); no voxel "
        "is made.",
    )


class Extracted(Classified):
    """``system.extract.completed``: text (stored once), metadata and embedded parts added."""

    extract: ExtractSummary = Field(description="What the extract stage took from the file.")


class NlpProcessed(Classified):
    """``system.nlp.processed``: the NLP result added."""

    nlp: NlpAnalysis = Field(description="Language, sentences, entities, noun chunks.")
    inference: Inference | None = Field(None, description="Set when infer ran first.")


class InferenceCompleted(Classified):
    """``system.ml.inference.completed``: the inference result added."""

    inference: Inference = Field(description="Model, version and top labels.")
    nlp: NlpAnalysis | None = Field(None, description="Set when nlp ran first.")


class VoxelCreated(Classified):
    """``system.voxel.created``: the voxel stored (the terminal event of a route)."""

    voxel: VoxelSummary = Field(description="The stored voxel.")
    nlp: NlpAnalysis | None = Field(None, description="Set when nlp ran.")
    inference: Inference | None = Field(None, description="Set when infer ran.")


class DlqRecord(EventData):
    """``system.dlq.*``: a failure with the original event, reason, error and traceback.

    ``original`` is the original event as it was (its data may be what failed validation);
    ``original_raw`` holds the message text when it was not an event at all. A stage after
    classify that failed for good adds ``voxel_id`` (an extra field): the artifact was stored
    without that stage's result as this voxel, which a replay completes (:func:`voxel_of`).
    """

    model_config = ConfigDict(frozen=True, extra="allow")  # backends may add bookkeeping
    wire_exclude_none: ClassVar[bool] = False  # "original": null says there was no event

    stage: str
    reason: str
    error: ErrorInfo
    traceback: str = ""
    attempts: int = Field(ge=0)
    original: dict[str, Any] | None = None
    original_raw: str | None = None
    retryable: bool | None = Field(
        None,
        description="The error type's `retryable` when the record was built (a replay may "
        "succeed); absent in older records, whose type name then decides.",
    )


D = TypeVar("D", bound=EventData)

#: Event type -> model of its data. ``system.dlq.*`` types all map to :class:`DlqRecord`.
REGISTRY: dict[str, type[EventData]] = {
    INGEST_RECEIVED: IngestRequest,
    INGEST_CLASSIFIED: Classified,
    EXTRACT_COMPLETED: Extracted,
    NLP_PROCESSED: NlpProcessed,
    INFERENCE_COMPLETED: InferenceCompleted,
    VOXEL_CREATED: VoxelCreated,
}


_BUILT_IN = frozenset(REGISTRY)


def register(event_type: str, model: type[EventData]) -> None:
    """Add an event type (a new stage's output). Re-registering the same model is a no-op."""
    known = REGISTRY.get(event_type)
    if known is not None and known is not model:
        raise ValueError(f"event type {event_type!r} is already bound to {known.__name__}")
    REGISTRY[event_type] = model


def unregister(event_type: str) -> None:
    """Remove an event type added with :func:`register` (tests; built-in types stay)."""
    if event_type in _BUILT_IN:
        raise ValueError(f"{event_type!r} is a built-in event type")
    REGISTRY.pop(event_type, None)


def model_for(event_type: str) -> type[EventData]:
    """The data model of ``event_type``; unknown types raise :class:`MalformedEventError`."""
    if event_type.startswith(DLQ_PREFIX):
        return DlqRecord
    model = REGISTRY.get(event_type)
    if model is None:
        raise MalformedEventError(
            f"unknown event type {event_type!r}", details={"known": sorted(REGISTRY)}
        )
    return model


def _problems(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"loc": ".".join(str(p) for p in e["loc"]) or "<root>", "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]


def validate_data(event: CloudEvent) -> EventData:
    """Validate ``event.data`` against its type's model (once: the result is cached on the event).

    Raises:
        MalformedEventError: unknown type, or data that does not fit; ``details["errors"]``
            lists every problem (location, message, type).
    """
    cached = event._typed_data
    if isinstance(cached, EventData):
        return cached
    model = model_for(event.type)
    try:
        typed = model.model_validate(event.data)
    except ValidationError as exc:
        problems = _problems(exc)
        summary = "; ".join(f"{p['loc']}: {p['msg']}" for p in problems)
        raise MalformedEventError(
            f"{event.type} data does not match {model.__name__}: {summary}",
            details={"model": model.__name__, "errors": problems},
        ) from exc
    event._typed_data = typed
    return typed


def data_of(event: CloudEvent, model: type[D]) -> D:
    """The event's validated data as ``model`` (or a subclass); validated at most once.

    Raises:
        MalformedEventError: the data does not fit, or is another model than ``model``.
    """
    typed = validate_data(event)
    if not isinstance(typed, model):
        raise MalformedEventError(
            f"{event.type} carries {type(typed).__name__}, not {model.__name__}",
            details={"expected": model.__name__, "got": type(typed).__name__},
        )
    return typed


def to_wire(data: EventData) -> dict[str, Any]:
    """The JSON object of ``data`` (field names as on the wire; strings kept as they are)."""
    return data.model_dump(mode="json", exclude_none=data.wire_exclude_none)


def check_output(event_type: str, data: EventData) -> None:
    """Refuse data that is not exactly its event type's model (a stage bug)."""
    expected = model_for(event_type)
    if type(data) is not expected:
        raise EventContractError(
            f"{event_type} must carry {expected.__name__}, got {type(data).__name__}",
            details={"event_type": event_type, "expected": expected.__name__},
        )


def typed_event(
    event_type: str, data: EventData, *, parent: CloudEvent | None = None, source: str | None = None
) -> CloudEvent:
    """A new event carrying ``data``, checked against the registry.

    It is derived from ``parent`` (same correlation id, caused by it) or starts a new chain.
    """
    check_output(event_type, data)
    wire = to_wire(data)
    if parent is None:
        event = new_event(event_type, wire, **({"source": source} if source else {}))
    else:
        event = parent.derive(event_type, wire, source=source)
    event._typed_data = data
    return event


def ensure_valid(event: CloudEvent) -> EventData:
    """Check an event a stage produced; a mismatch is an :class:`EventContractError`.

    Data built by :func:`typed_event` passes at once; anything else is validated.
    """
    try:
        return validate_data(event)
    except MalformedEventError as exc:
        raise EventContractError(
            f"stage output does not match its contract: {exc}", details=exc.details
        ) from exc


def extend(data: EventData, model: type[D], **fields: Any) -> D:
    """``model`` holding everything ``data`` holds plus ``fields`` (the next stage's data)."""
    values = {name: getattr(data, name) for name in type(data).model_fields}
    values.update(fields)
    return model.model_validate(values)


def original_data(record: DlqRecord) -> EventData | None:
    """The original event's data of a DLQ record, typed; None when there is none or it is bad."""
    original = record.original
    if not isinstance(original, dict):
        return None
    try:
        return model_for(str(original.get("type", ""))).model_validate(original.get("data") or {})
    except (MalformedEventError, ValidationError):
        return None


def voxel_of(record: CloudEvent) -> str | None:
    """The voxel a DLQ record names, or None for a plain dead letter.

    The artifact was stored without the failed stage's result (it is not the end of the artifact;
    the voxel is).
    """
    if not record.is_dlq:
        return None
    value = record.data.get("voxel_id")
    return value if isinstance(value, str) and value else None


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every event type's data (``system.dlq.*`` as one entry)."""
    out = {name: model.model_json_schema() for name, model in sorted(REGISTRY.items())}
    out[f"{DLQ_PREFIX}*"] = DlqRecord.model_json_schema()
    return out


__all__ = [
    "REGISTRY",
    "Artifact",
    "Classification",
    "Classified",
    "DlqRecord",
    "ErrorInfo",
    "EventData",
    "Extracted",
    "ExtractionInfo",
    "Inference",
    "InferenceCompleted",
    "IngestRequest",
    "LabelScore",
    "NlpAnalysis",
    "NlpProcessed",
    "Parent",
    "Routed",
    "StageFailure",
    "StoredArtifact",
    "VoxelChecksums",
    "VoxelCreated",
    "VoxelLineage",
    "VoxelSummary",
    "check_output",
    "data_of",
    "ensure_valid",
    "extend",
    "model_for",
    "original_data",
    "register",
    "schemas",
    "to_wire",
    "typed_event",
    "unregister",
    "validate_data",
    "voxel_of",
]
