"""Response models of the HTTP API, and the one place that maps events and voxels onto them.

The pipeline's events still carry plain ``data`` dicts; every function that reads an event's
``data`` for the API is here (``*_from_*``), so adopting the typed models of
``thunderline.eventdata`` changes this module only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from thunderline.api.dlq import DlqEntry
from thunderline.api.live import IngestProgress
from thunderline.voxel.schema import Voxel


class IngestAccepted(BaseModel):
    correlation_id: str = Field(description="Follow the ingest with this id.")
    event_id: str
    name: str
    size: int
    sha256: str
    status_url: str


class DlqBrief(BaseModel):
    id: str
    stage: str | None = None
    reason: str | None = None
    message: str | None = None


class IngestStatus(BaseModel):
    correlation_id: str
    name: str | None = None
    outcome: Literal["pending", "stored", "dead_lettered", "partial"]
    stages_done: list[str]
    voxel_ids: list[str]
    dlq: list[DlqBrief]


class VoxelOut(BaseModel):
    id: str
    ts: str
    source: str
    name: str | None = None
    label: str | None = None
    group: str | None = None
    payload_ref: str
    payload_size: int
    checksums: dict[str, str]
    coords: dict[str, Any]
    traits: dict[str, Any]
    lineage: dict[str, list[str]]
    correlation_id: str
    causation_id: str | None = None
    event_id: str
    schema_version: int


class VoxelPage(BaseModel):
    items: list[VoxelOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class LineageNode(BaseModel):
    id: str
    name: str | None = None
    label: str | None = None


class LineageEdge(BaseModel):
    child_id: str
    parent_id: str
    depth: int


class LineageOut(BaseModel):
    voxel_id: str
    direction: Literal["ancestors", "descendants"]
    nodes: list[LineageNode]
    edges: list[LineageEdge]


class DlqItem(BaseModel):
    id: str
    type: str
    time: str
    correlation_id: str
    stage: str | None = None
    reason: str | None = None
    message: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    attempts: int | None = None
    artifact_name: str | None = None
    replayable: bool
    status: Literal["open", "replayed", "resolved"]
    replay_event_id: str | None = None


class DlqPage(BaseModel):
    items: list[DlqItem]
    next_cursor: str | None = None


class ReplayAccepted(BaseModel):
    dlq_id: str
    replay_event_id: str
    correlation_id: str
    status_url: str


class ModelInfo(BaseModel):
    name: str
    version: str
    kind: str
    path: str
    sha256: str | None = None
    checksum: str = Field(description="`ok`, `mismatch`, `missing` or `untrusted`.")
    health: str = Field(description="Supervisor state, or `not loaded`.")
    detail: str = ""


class ModelList(BaseModel):
    enabled: bool
    registry: str
    models: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok"]


class Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, Check]


# ---- mappings ------------------------------------------------------------------------------
def artifact_name(voxel: Voxel) -> str | None:
    artifact = voxel.traits.get("artifact")
    if isinstance(artifact, dict) and artifact.get("name") is not None:
        return str(artifact["name"])
    return None


def voxel_out(voxel: Voxel) -> VoxelOut:
    classification = voxel.traits.get("classification")
    group = classification.get("group") if isinstance(classification, dict) else None
    doc = voxel.model_dump(mode="json")
    return VoxelOut(
        id=voxel.id,
        ts=doc["ts"],
        source=voxel.source,
        name=artifact_name(voxel),
        label=voxel.label,
        group=str(group) if group is not None else None,
        payload_ref=voxel.payload_ref,
        payload_size=voxel.payload_size,
        checksums=doc["checksums"],
        coords=doc["coords"],
        traits=doc["traits"],
        lineage=doc["lineage"],
        correlation_id=voxel.correlation_id,
        causation_id=voxel.causation_id,
        event_id=voxel.event_id,
        schema_version=voxel.schema_version,
    )


def ingest_status(progress: IngestProgress) -> IngestStatus:
    return IngestStatus(
        correlation_id=progress.correlation_id,
        name=progress.name,
        outcome=progress.outcome,  # type: ignore[arg-type]
        stages_done=list(progress.stages_done),
        voxel_ids=list(progress.voxel_ids),
        dlq=[DlqBrief(**d) for d in progress.dlq],
    )


def dlq_item(entry: DlqEntry) -> DlqItem:
    data = entry.record.data
    raw_error = data.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    attempts = data.get("attempts")
    return DlqItem(
        id=entry.record.id,
        type=entry.record.type,
        time=entry.record.time,
        correlation_id=entry.record.correlationid,
        stage=_str(data.get("stage")),
        reason=_str(data.get("reason")),
        message=_str(error.get("message")),
        error_type=_str(error.get("type")),
        traceback=_str(data.get("traceback")),
        attempts=attempts if isinstance(attempts, int) else None,
        artifact_name=_str(entry.artifact.get("name")),
        replayable=entry.original is not None,
        status=entry.status,  # type: ignore[arg-type]
        replay_event_id=entry.replay_event_id,
    )


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
