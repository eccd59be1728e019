"""What an ingest run produced: one record per finished artifact, and the run's summary."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from thunderline.events import CloudEvent


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class ArtifactRecord:
    """The terminal outcome of one artifact (``ok`` or ``dlq``)."""

    path: str | None
    label: str | None
    group: str | None
    mime: str | None
    score: float | None
    correlation_id: str
    outcome: str
    reason: str | None = None
    stage: str | None = None
    event_type: str = ""
    event_id: str = ""
    voxel_id: str | None = None
    classify_ms: float | None = None
    archive: str | None = None  # for an archive member: the archive's path (or voxel id)
    results: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)


def _path_of(artifact: dict[str, Any]) -> str | None:
    if artifact.get("path"):
        return str(artifact["path"])
    source = artifact.get("source")
    if isinstance(source, str) and source.startswith("file://"):
        return unquote(urlparse(source).path, errors="surrogateescape")
    name = artifact.get("name")
    return str(name) if name else None


def _archive_of(artifact: Any, parent: dict[str, Any] | None) -> str | None:
    """For an archive member: the archive's path (from ``source`` = ``<archive>!/<member>``)."""
    if not parent:
        return None
    source = artifact.get("source") if isinstance(artifact, dict) else None
    if isinstance(source, str) and "!/" in source:
        outer = source.split("!/", 1)[0]
        if outer.startswith("file://"):
            return unquote(urlparse(outer).path, errors="surrogateescape")
        return outer
    return str(parent.get("voxel_id"))


def record_from_event(event: CloudEvent) -> ArtifactRecord:
    """Turn a terminal or DLQ event into the record of its artifact."""
    if event.is_dlq:
        original = event.data.get("original") or {}
        data = original.get("data", {}) if isinstance(original, dict) else {}
        outcome, reason, stage = "dlq", event.data.get("reason"), event.data.get("stage")
    else:
        data = event.data
        outcome, reason, stage = "ok", None, None
    artifact = data.get("artifact") or {}
    classification = data.get("classification") or {}
    if outcome == "dlq" and not classification:
        details = (event.data.get("error") or {}).get("details") or {}
        classification = details.get("classification") or {}
    voxel = data.get("voxel") or {}
    results = {k: data[k] for k in ("nlp", "inference") if k in data}
    parent = data.get("parent") if isinstance(data.get("parent"), dict) else None
    return ArtifactRecord(
        path=_path_of(artifact) if isinstance(artifact, dict) else None,
        label=classification.get("label"),
        group=classification.get("group"),
        mime=classification.get("mime"),
        score=classification.get("score"),
        correlation_id=event.correlationid,
        outcome=outcome,
        reason=reason,
        stage=stage,
        event_type=event.type,
        event_id=event.id,
        voxel_id=voxel.get("id") if isinstance(voxel, dict) else None,
        classify_ms=classification.get("latency_ms"),
        archive=_archive_of(artifact, parent),
        results=results,
    )


@dataclass
class RunReport:
    """Every artifact record of a run, plus what was skipped before the pipeline."""

    records: list[ArtifactRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    wall_s: float = 0.0

    def add(self, event: CloudEvent) -> ArtifactRecord:
        record = record_from_event(event)
        self.records.append(record)
        return record

    @property
    def ok(self) -> list[ArtifactRecord]:
        return [r for r in self.records if r.outcome == "ok"]

    @property
    def dlq(self) -> list[ArtifactRecord]:
        return [r for r in self.records if r.outcome == "dlq"]

    def labels(self) -> Counter[str]:
        return Counter(r.label or "-" for r in self.ok)

    def dlq_reasons(self) -> Counter[str]:
        return Counter(f"{r.stage}:{r.reason}" for r in self.dlq)

    def latency_ms(self) -> dict[str, float | None]:
        values = [r.classify_ms for r in self.records if r.classify_ms is not None]
        return {f"p{q}": percentile(values, q) for q in (50, 95, 99)}
