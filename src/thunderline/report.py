"""What an ingest run produced: one record per finished artifact, and the run's summary."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, ConfigDict, Field

from thunderline.errors import MalformedEventError
from thunderline.eventdata import (
    Artifact,
    Classification,
    Classified,
    DlqRecord,
    EventData,
    Inference,
    InferenceCompleted,
    IngestRequest,
    NlpAnalysis,
    NlpProcessed,
    Parent,
    VoxelCreated,
    original_data,
    validate_data,
    voxel_of,
)
from thunderline.events import CloudEvent
from thunderline.summary import NlpSummary, summarize_data


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class ErrorSummary(BaseModel):
    """The error of a dead-lettered artifact (the full traceback is in the DLQ record)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    message: str


class FailedStage(BaseModel):
    """A stage after classify that failed for good.

    The artifact was stored without its result (``outcome`` degraded) and its DLQ record
    (``dlq_id``) names the voxel.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: str
    reason: str
    error_type: str
    message: str
    dlq_id: str


class SkippedStage(BaseModel):
    """A stage that did not apply to the artifact, or did not run (an earlier one failed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: str
    reason: str = Field(description="Why: `skipped: no model applies ...`, `skipped: nlp failed`.")


class ArtifactRecord(BaseModel):
    """The terminal outcome of one artifact: one ``--json`` line (schema: ``--json-schema``).

    The flat fields (``label``, ``group``, ``mime``, ``score``, ``classify_ms``) repeat the
    classification for scripts that only want those; ``classification``, ``nlp`` and
    ``inference`` are the stage results in full (absent stages are ``null``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str | None = Field(description="The input file (or the member name / source).")
    name: str | None = Field(None, description="File or archive member name.")
    label: str | None = Field(description="Magika label.")
    group: str | None = Field(description="Magika group.")
    mime: str | None = Field(description="MIME type.")
    score: float | None = Field(description="Magika score.")
    correlation_id: str = Field(description="One id from ingest to the end of this artifact.")
    outcome: Literal["ok", "degraded", "dlq", "skipped"] = Field(
        description="`ok`: stored as a voxel (or ended); `degraded`: stored as a voxel without "
        "the result of a stage that failed (`failed` says which; each has a DLQ record naming "
        "the voxel, and replaying it completes the voxel); `dlq`: dead-lettered, no voxel; "
        "`skipped`: found by the walk and not ingested (a symlinked folder, a folder without "
        "`--recursive`; `notes` says why)."
    )
    reason: str | None = Field(
        None, description="DLQ reason (`outcome` dlq), or why it was skipped (`outcome` skipped)."
    )
    stage: str | None = Field(None, description="The stage that dead-lettered it.")
    error: ErrorSummary | None = Field(None, description="The error (`outcome` dlq).")
    event_type: str = Field("", description="Type of the terminal or DLQ event.")
    event_id: str = Field("", description="Id of the terminal or DLQ event.")
    voxel_id: str | None = Field(None, description="The stored voxel.")
    classify_ms: float | None = Field(
        None, description="Classify time of this file (admitted -> classified)."
    )
    archive: str | None = Field(None, description="For an archive member: the archive's path.")
    classification: Classification | None = Field(None, description="Magika's result in full.")
    nlp: NlpAnalysis | NlpSummary | None = Field(
        None,
        description="The NLP result (when nlp ran): its summary (counts, top entities), or "
        "every sentence and entity with `--full`.",
    )
    inference: Inference | None = Field(
        None, description="The inference result (when infer ran); top 3 labels unless `--full`."
    )
    failed: list[FailedStage] = Field(
        default_factory=list,
        description="Stages that failed for good while the artifact was still stored "
        "(`outcome` degraded): stage, reason, error type, message, DLQ record id.",
    )
    skipped: list[SkippedStage] = Field(
        default_factory=list,
        description="Stages that did not apply or did not run, with the reason (`infer`: "
        "`skipped: a vector image (SVG) ...`; `nlp`: `skipped: extract failed`).",
    )
    notes: list[str] = Field(
        default_factory=list,
        description="What a stage or the walk noted instead of a result: `stage: note` (a "
        "skipped stage, a tar link member not expanded, an archive nested past the depth "
        "limit, a skipped folder).",
    )

    def to_json_dict(self, *, full: bool = False) -> dict[str, Any]:
        """The ``--json`` line: NLP and inference summarised unless ``full``."""
        doc = self.model_dump(mode="json")
        if not full:
            doc = summarize_data(doc)
        return doc


def record_schema() -> dict[str, Any]:
    """The JSON Schema of one ``thunderline ingest --json`` line."""
    schema = ArtifactRecord.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _path_of(artifact: Artifact) -> str | None:
    if artifact.path:
        return artifact.path
    source = artifact.source
    if source and source.startswith("file://"):  # the name's exact bytes (names.py)
        return unquote(urlparse(source).path, errors="surrogateescape")
    return artifact.name or None


def _archive_of(artifact: Artifact, parent: Parent | None) -> str | None:
    """For an archive member: the archive's path (from ``source`` = ``<archive>!/<member>``)."""
    if parent is None:
        return None
    source = artifact.source
    if source and "!/" in source:
        outer = source.split("!/", 1)[0]
        if outer.startswith("file://"):
            return unquote(urlparse(outer).path, errors="surrogateescape")
        return outer
    return parent.voxel_id


def _typed(event: CloudEvent) -> EventData | None:
    try:
        return validate_data(event)
    except MalformedEventError:
        return None


def record_from_event(event: CloudEvent) -> ArtifactRecord:
    """Turn a terminal or DLQ event into the record of its artifact."""
    typed = _typed(event)
    data: EventData | None = typed
    classification: Classification | None = None
    fields: dict[str, Any] = {"outcome": "ok"}
    if isinstance(typed, DlqRecord):
        data = original_data(typed)
        fields = {
            "outcome": "dlq",
            "reason": typed.reason,
            "stage": typed.stage,
            "error": ErrorSummary(type=typed.error.type, message=typed.error.message),
        }
        found = typed.error.details.get("classification")
        if isinstance(found, dict):  # classified before it failed (too large, ...)
            try:
                classification = Classification.model_validate(found)
            except ValueError:
                classification = None
    elif typed is None:
        fields = {"outcome": "dlq", "reason": "malformed_event", "stage": "collector"}
    if isinstance(data, Classified):
        classification = data.classification
    if isinstance(data, IngestRequest):
        fields.update(
            path=_path_of(data.artifact),
            name=data.artifact.name,
            archive=_archive_of(data.artifact, data.parent),
        )
    if isinstance(data, VoxelCreated):
        fields["voxel_id"] = data.voxel.id
    if isinstance(data, NlpProcessed | InferenceCompleted | VoxelCreated):
        fields.update(nlp=data.nlp, inference=data.inference)
    if isinstance(data, IngestRequest) and data.notes:
        fields["notes"] = [f"{n.stage}: {n.note}" for n in data.notes]
        fields["skipped"] = [
            SkippedStage(stage=n.stage, reason=n.note)
            for n in data.notes
            if n.note.startswith("skipped")
        ]
    if isinstance(data, VoxelCreated) and data.failures:
        fields["outcome"] = "degraded"
        fields["failed"] = [FailedStage.model_validate(f.mark()) for f in data.failures]
    fields.setdefault("path", None)
    return ArtifactRecord(
        label=classification.label if classification else None,
        group=classification.group if classification else None,
        mime=classification.mime if classification else None,
        score=classification.score if classification else None,
        classify_ms=classification.latency_ms if classification else None,
        classification=classification,
        correlation_id=event.correlationid,
        event_type=event.type,
        event_id=event.id,
        **fields,
    )


def skipped_record(path: str, reason: str, why: str) -> ArtifactRecord:
    """The record of a path the walk found and did not ingest (no ingest, no correlation id)."""
    return ArtifactRecord(
        path=path,
        name=path.rsplit("/", 1)[-1] or path,
        label=None,
        group=None,
        mime=None,
        score=None,
        correlation_id="",
        outcome="skipped",
        reason=reason,
        notes=[f"walk: {why}"],
    )


@dataclass
class RunReport:
    """Every artifact record of a run, plus what was skipped before the pipeline."""

    records: list[ArtifactRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    wall_s: float = 0.0

    def add(self, event: CloudEvent) -> ArtifactRecord | None:
        """The record of a terminal event, kept; None for the DLQ record of a degraded artifact.

        The voxel's record is the artifact's, listing the failure in ``failed``.
        """
        if voxel_of(event) is not None:
            return None
        record = record_from_event(event)
        self.records.append(record)
        return record

    @property
    def ok(self) -> list[ArtifactRecord]:
        """Records of artifacts that ended as a voxel."""
        return [r for r in self.records if r.outcome == "ok"]

    @property
    def degraded(self) -> list[ArtifactRecord]:
        """Stored without the result of a stage that failed (completed with failures)."""
        return [r for r in self.records if r.outcome == "degraded"]

    @property
    def stored(self) -> list[ArtifactRecord]:
        """Every artifact stored as a voxel (``ok`` and ``degraded``)."""
        return [r for r in self.records if r.outcome in ("ok", "degraded")]

    @property
    def dlq(self) -> list[ArtifactRecord]:
        """Records of artifacts that ended in the DLQ."""
        return [r for r in self.records if r.outcome == "dlq"]

    def labels(self) -> Counter[str]:
        """Voxels per Magika label (``ok`` and ``degraded``)."""
        return Counter(r.label or "-" for r in self.stored)

    def dlq_reasons(self) -> Counter[str]:
        """DLQ records per ``stage:reason``."""
        return Counter(f"{r.stage}:{r.reason}" for r in self.dlq)

    def latency_ms(self) -> dict[str, float | None]:
        """Percentiles over files of the classify latency (admitted -> classified)."""
        values = [r.classify_ms for r in self.records if r.classify_ms is not None]
        return {f"p{q}": percentile(values, q) for q in (50, 95, 99)}

    def queue_wait_ms(self) -> dict[str, float | None]:
        """Percentiles over files of the wait before the classify stage took the file up."""
        values = [
            r.classification.queue_wait_ms
            for r in self.records
            if r.classification is not None and r.classification.queue_wait_ms is not None
        ]
        return {f"p{q}": percentile(values, q) for q in (50, 95, 99)}
