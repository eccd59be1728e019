"""Response models of the HTTP API, and the one place that maps events and voxels onto them.

The parts are the typed event models of :mod:`thunderline.eventdata` (the artifact of an
accepted upload, a voxel's classification / NLP / inference results, a DLQ record's error), so
the OpenAPI document publishes the same schemas as ``thunderline events schema``.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from thunderline import ids
from thunderline.api.live import IngestProgress
from thunderline.dlq.record import Subject
from thunderline.eventdata import (
    Classification,
    DlqRecord,
    ErrorInfo,
    Inference,
    NlpAnalysis,
    StoredArtifact,
    data_of,
)
from thunderline.events import CloudEvent
from thunderline.outcomes import DlqGroup, OutcomeRecord
from thunderline.summary import VoxelBrief
from thunderline.voxel.schema import Voxel


class IngestAccepted(BaseModel):
    """An upload received and stored, its ingest started: follow it at `status_url`.

    `name`, `size` and `sha256` describe the file as it was received; `event_id` is the id
    of the ingest request event.
    """

    correlation_id: str = Field(description="Follow the ingest with this id.")
    event_id: str
    name: str
    size: int
    sha256: str
    status_url: str
    artifact: StoredArtifact = Field(description="The artifact of the ingest request event.")


class DlqBrief(BaseModel):
    """A DLQ record of an ingest, in brief: its id, the stage that failed, reason and message."""

    id: str
    stage: str | None = None
    reason: str | None = None
    message: str | None = None
    voxel_id: str | None = Field(
        None, description="The voxel stored without this stage's result (degraded)."
    )


class IngestStatus(BaseModel):
    """Where one ingest is: the stages done, its outcome, the voxels stored, the DLQ records."""

    correlation_id: str
    name: str | None = None
    outcome: Literal["pending", "stored", "degraded", "dead_lettered", "partial"] = Field(
        description="`degraded`: stored, but a stage after classify failed (each DLQ record "
        "names the voxel); `partial`: some artifacts of the ingest stored, some dead-lettered."
    )
    stages_done: list[str]
    voxel_ids: list[str]
    dlq: list[DlqBrief]


class VoxelOut(BaseModel):
    """One voxel in full: its payload reference and checksums, every result, lineage and ids.

    `ts` is when it was stored; `payload_ref`, `payload_size` and `checksums` locate and
    verify its bytes; `lineage` names its parents (the archive it came from);
    `correlation_id`, `causation_id` and `event_id` tie it to the events that made it.
    """

    id: str
    short_id: str = Field(description="The id's random tail: typeable, accepted everywhere.")
    ts: str
    source: str
    name: str | None = None
    label: str | None = None
    group: str | None = None
    payload_ref: str
    payload_size: int
    checksums: dict[str, str]
    coords: dict[str, Any]
    classification: Classification | None = Field(None, description="Magika's result.")
    nlp: NlpAnalysis | None = Field(None, description="NLP result (text artifacts).")
    inference: Inference | None = Field(None, description="Inference result (images).")
    traits: dict[str, Any] = Field(description="Every trait as stored in the voxel.")
    lineage: dict[str, list[str]]
    correlation_id: str
    causation_id: str | None = None
    event_id: str
    schema_version: int


class VoxelPage(BaseModel):
    """A list page: each voxel's summary (counts, top entities and labels, sizes, ids).

    The full sentences and entities are on ``GET /v1/voxels/{id}``.
    """

    items: list[VoxelBrief]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class SelectedPage(BaseModel):
    """A list page with `fields`: each item holds only the named summary fields."""

    items: list[dict[str, Any]]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


#: Fields `fields=` may name, per representation.
BRIEF_FIELDS = tuple(VoxelBrief.model_fields)
DETAIL_FIELDS = tuple(VoxelOut.model_fields)


def select_fields(doc: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Only the named top-level fields of ``doc``, in the order given (None for an absent one)."""
    return {name: doc.get(name) for name in fields}


class LineageNode(BaseModel):
    """A voxel in a lineage graph: its id, and its name and label while it still exists."""

    id: str
    name: str | None = None
    label: str | None = None


class LineageEdge(BaseModel):
    """A parent-child link (an archive and a member) and its depth from the voxel asked about."""

    child_id: str
    parent_id: str
    depth: int


class LineageOut(BaseModel):
    """The lineage graph above (ancestors) or below (descendants) a voxel, and its results."""

    voxel_id: str
    direction: Literal["ancestors", "descendants"]
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    results: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The voxel's result versions: stage, version, producer (NAME@VERSION of "
        "the model or extractor), current, the event it was made for.",
    )


class ReplayAccepted(BaseModel):
    """A dead letter sent through the pipeline again: follow the replay at `status_url`.

    `replay_event_id` is the id of the event the replay sent.
    """

    dlq_id: str
    replay_event_id: str
    correlation_id: str
    status_url: str


DlqStatusName = Literal["open", "replayed", "resolved", "dismissed"]
Permanence = Literal["retryable", "permanent", "unknown"]


class DlqItem(BaseModel):
    """One dead-letter record: what failed where and why, and its replay or dismissal state.

    `type` and `time` are the DLQ event's; `attempts` counts the tries made before the
    record was written; `replay_event_id`, and the `dismissed_*` fields, tell how a closed
    record was closed.
    """

    id: str
    short_id: str = Field(description="The id people type (the random tail of the UUIDv7).")
    type: str
    time: str
    correlation_id: str
    stage: str | None = None
    reason: str | None = None
    message: str | None = None
    error_type: str | None = None
    error: ErrorInfo | None = None
    traceback: str | None = None
    attempts: int | None = None
    artifact_name: str | None = None
    replayable: bool = Field(description="The record holds an original event to send again.")
    retryable: bool | None = Field(
        None,
        description="The error type's `retryable` (null: the type is not known); a replay "
        "sends only retryable records unless forced with `all=true`.",
    )
    permanence: Permanence
    group_id: str | None = Field(None, description="Its (stage, reason, artifact) group.")
    status: DlqStatusName
    replay_event_id: str | None = None
    voxel_id: str | None = Field(
        None,
        description="The voxel the artifact was stored as without this stage's result "
        "(a replay completes it); null for a dead letter without a voxel.",
    )
    dismissed_unix: float | None = None
    dismissed_by: str | None = None
    dismiss_note: str | None = None


class DlqPage(BaseModel):
    """A page of dead-letter records, oldest first; `next_cursor` is null on the last page."""

    items: list[DlqItem]
    next_cursor: str | None = None


class DlqGroupOut(BaseModel):
    """Repeated failures of one artifact at one stage for one reason."""

    group_id: str = Field(description="Typed in `--group` and the group routes.")
    stage: str | None = None
    reason: str | None = None
    artifact: str | None = Field(None, description="The artifact's source, path or name.")
    artifact_name: str | None = None
    count: int
    first_time: str = Field(description="When the group's first record was made (UTC).")
    last_time: str = Field(description="When its latest record was made (UTC).")
    retryable: bool | None = None
    permanence: Permanence
    latest: DlqItem


class DlqGroupPage(BaseModel):
    """A page of dead-letter groups, most recent first, and how many groups there are."""

    items: list[DlqGroupOut]
    total: int = Field(description="Groups of that status in all.")


class DlqDismissed(BaseModel):
    """The dead-letter records a dismissal closed (those already closed are not listed)."""

    dismissed: list[str] = Field(description="Ids of the records dismissed now.")


class DlqPurged(BaseModel):
    """How many closed dead-letter records a purge deleted (or would), in all and per status."""

    dry_run: bool
    deleted: int = Field(description="Records deleted (with dry_run: that would be).")
    by_status: dict[str, int]


class DlqGroupReplay(BaseModel):
    """What a group replay sent and what it left out, by reason."""

    replayed: list[ReplayAccepted]
    skipped: dict[str, int] = Field(description="Records left out per reason.")
    skipped_ids: list[str]


class DeletionOut(BaseModel):
    """One audit record of a voxel deletion."""

    id: str
    voxel_id: str
    payload_sha256: str
    payload_removed: bool = Field(description="False while another voxel still holds the bytes.")
    source: str
    label: str | None = None
    actor: str
    reason: str
    deleted_unix: float


class VoxelDeleted(BaseModel):
    """The audit records of a deletion: one per voxel deleted (with its subtree, if asked)."""

    deleted: list[DeletionOut]


class WebhookDeliveries(BaseModel):
    """The webhook delivery log: each delivery with every attempt."""

    items: list[dict[str, Any]]


class SourceList(BaseModel):
    """Source roots kept in step by ``sync``/``watch``: state, entry counts, last pass."""

    items: list[dict[str, Any]]


class SourceChange(BaseModel):
    """Add a source root (or find it) and set it active or paused."""

    model_config = ConfigDict(strict=True, extra="forbid")  # JSON true/false only

    uri: str = Field(
        min_length=6,
        max_length=1024,
        description="`file:///abs/folder` or `s3://bucket/prefix`",
        pattern=r"^(file:///|s3://)",
    )
    paused: bool = False


class ModelInfo(BaseModel):
    """A registered model: name, version, kind, file and SHA-256, checksum status and health."""

    name: str
    version: str
    kind: str
    path: str
    sha256: str | None = None
    checksum: str = Field(description="`ok`, `mismatch`, `missing` or `untrusted`.")
    health: str = Field(description="Supervisor state, or `not loaded`.")
    detail: str = ""


class ModelList(BaseModel):
    """The model registry: whether ONNX inference is enabled, the registry file and its models."""

    enabled: bool
    registry: str
    models: list[ModelInfo]


class Health(BaseModel):
    """The liveness answer: the process is up."""

    status: Literal["ok"]


class Check(BaseModel):
    """One readiness check: whether it passed, and what was found."""

    ok: bool
    detail: str


class Readiness(BaseModel):
    """Whether the service is ready: true when every check passed."""

    ready: bool
    checks: dict[str, Check] = Field(
        default_factory=dict,
        description="Each check with its detail; only for a caller with a token "
        "(anonymous callers get `ready` alone).",
    )


# ---- mappings ------------------------------------------------------------------------------
def artifact_name(voxel: Voxel) -> str | None:
    """The file name the voxel's artifact had (its ``artifact`` trait), None when not known."""
    artifact = voxel.traits.get("artifact")
    if isinstance(artifact, dict) and artifact.get("name") is not None:
        return str(artifact["name"])
    return None


def voxel_out(voxel: Voxel) -> VoxelOut:
    """The API view of a voxel: its traits also as typed results, its name and Magika group.

    A stored result that no longer fits its event-data model (an older schema) is left
    out of the typed fields (``classification``, ``nlp``, ``inference``) but kept in
    ``traits``.
    """
    classification = voxel.traits.get("classification")
    group = classification.get("group") if isinstance(classification, dict) else None
    doc = voxel.model_dump(mode="json")
    return VoxelOut(
        id=voxel.id,
        short_id=ids.short(voxel.id),
        ts=doc["ts"],
        source=voxel.source,
        name=artifact_name(voxel),
        label=voxel.label,
        group=str(group) if group is not None else None,
        payload_ref=voxel.payload_ref,
        payload_size=voxel.payload_size,
        checksums=doc["checksums"],
        coords=doc["coords"],
        classification=_typed(Classification, voxel.traits.get("classification")),
        nlp=_typed(NlpAnalysis, voxel.traits.get("nlp")),
        inference=_typed(Inference, voxel.traits.get("inference")),
        traits=doc["traits"],
        lineage=doc["lineage"],
        correlation_id=voxel.correlation_id,
        causation_id=voxel.causation_id,
        event_id=voxel.event_id,
        schema_version=voxel.schema_version,
    )


def ingest_status(progress: IngestProgress) -> IngestStatus:
    """The API view of an ingest's progress."""
    return IngestStatus(
        correlation_id=progress.correlation_id,
        name=progress.name,
        outcome=progress.outcome,
        stages_done=list(progress.stages_done),
        voxel_ids=list(progress.voxel_ids),
        dlq=[DlqBrief(**d) for d in progress.dlq],
    )


def accepted(event: CloudEvent) -> IngestAccepted:
    """The 202 answer to an upload, from the ingest request event it was submitted as."""
    from thunderline.eventdata import IngestRequest

    artifact = data_of(event, IngestRequest).artifact
    stored = StoredArtifact.model_validate(artifact.model_dump())
    return IngestAccepted(
        correlation_id=event.correlationid,
        event_id=event.id,
        name=stored.name,
        size=stored.size,
        sha256=stored.sha256,
        status_url=f"/v1/ingest/{event.correlationid}",
        artifact=stored,
    )


def dlq_item(entry: OutcomeRecord) -> DlqItem:
    """The API view of one DLQ record of the outcome store."""
    record = data_of(entry.event, DlqRecord)
    subject = Subject.of(entry.event)
    return DlqItem(
        id=entry.event.id,
        type=entry.event.type,
        time=entry.event.time,
        correlation_id=entry.event.correlationid,
        stage=record.stage,
        reason=record.reason,
        message=record.error.message,
        error_type=record.error.type,
        error=record.error,
        traceback=record.traceback or None,
        attempts=record.attempts,
        artifact_name=_str(subject.artifact.get("name")),
        replayable=subject.original is not None,
        retryable=entry.retryable,
        permanence=entry.permanence,
        group_id=entry.group_id,
        short_id=entry.short_id,
        status=entry.status,
        replay_event_id=entry.replay_event_id,
        voxel_id=entry.voxel_id,
        dismissed_unix=entry.dismissed_unix,
        dismissed_by=entry.dismissed_by,
        dismiss_note=entry.dismiss_note,
    )


def _utc(unix: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def dlq_group_out(group: DlqGroup) -> DlqGroupOut:
    """The API view of one DLQ group (its latest record in full)."""
    latest = dlq_item(group.latest)
    return DlqGroupOut(
        group_id=group.id,
        stage=group.stage,
        reason=group.reason,
        artifact=group.artifact,
        artifact_name=latest.artifact_name,
        count=group.count,
        first_time=_utc(group.first_unix),
        last_time=_utc(group.last_unix),
        retryable=group.retryable,
        permanence=latest.permanence,
        latest=latest,
    )


M = TypeVar("M", bound=BaseModel)


def _typed(model: type[M], value: Any) -> M | None:
    """A stored trait as its event-data model (None when absent or from an older schema)."""
    if value is None:
        return None
    try:
        return model.model_validate(value)
    except ValidationError:
        return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


class ResultVersionsOut(BaseModel):
    """Every result version of a voxel by stage (oldest first), one current per stage.

    `tags` are the tags webhook rules put on the voxel.
    """

    voxel_id: str
    stages: dict[str, list[dict[str, Any]]]
    tags: list[str] = Field(default_factory=list)


class ReprocessRequest(BaseModel):
    """Run a stage again over the voxels a query matches (``thunderline reprocess``)."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal["extract", "nlp", "infer"]
    # the length is checked by the query parser, not by validation: a query over the limit is a
    # 400 query_syntax saying its length and the limit (as GET /v1/search); maxLength documented
    query: str = Field(
        "",
        description="Search query (empty: every voxel).",
        json_schema_extra={"maxLength": 1000},
    )
    model: str | None = Field(
        None, max_length=256, description="NAME@VERSION of the ONNX model or spaCy pipeline."
    )


class ReprocessRunOut(BaseModel):
    """A reprocess run: its stage, model, query, state and counts by item state."""

    id: str
    stage: str
    model: str | None
    query: str
    state: str
    total: int
    finished: int
    counts: dict[str, int]
    actor: str
    created_unix: float
    updated_unix: float


class ReprocessRuns(BaseModel):
    """Every reprocess run, newest first."""

    items: list[ReprocessRunOut]


class ReprocessDryRun(BaseModel):
    """What a run would take: matching voxels and who made their current results."""

    stage: str
    model: str | None
    query: str
    matching: int
    with_result: int
    producers: dict[str, int]
    already: int
