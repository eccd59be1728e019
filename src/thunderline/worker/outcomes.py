"""Interim outcome bookkeeping for the scale-out collector (until ``thunderline.outcomes``).

The shared ``thunderline.outcomes.OutcomeStore`` (harden branch) is the long-term home of
"every terminal record by correlation id"; this module keeps the same method names
(``record``, ``by_correlation``, ``dlq``) so the collector, ``status`` and ``ingest --bus``
switch to it by changing one import. One row per artifact and kind (``voxel`` / ``dlq``):

* the **artifact key** is the correlation id plus the artifact's ``source`` (archive members
  carry ``<archive>!/<member>``), so a redelivered or replayed event that ends the same way
  again adds no row (``INSERT … ON CONFLICT DO NOTHING``), and
* a ``voxel`` row for an artifact marks its ``dlq`` row ``resolved``; a DLQ row is ``open``
  until ``dlq replay`` marks it ``replayed`` (a new failure of the replay reopens it with the
  new record).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from thunderline.config import Settings
from thunderline.errors import BackendError
from thunderline.events import CloudEvent
from thunderline.report import ArtifactRecord, record_from_event
from thunderline.voxel.db import make_engine

_metadata = MetaData()
outcomes = Table(
    "thunderline_scale_outcomes",
    _metadata,
    Column("artifact_key", String(64), primary_key=True),
    Column("kind", String(8), primary_key=True),  # voxel | dlq
    Column("correlation_id", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # ok | open | resolved
    Column("stage", String(32)),
    Column("reason", String(64)),
    Column("voxel_id", String(64)),
    Column("event", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Index("ix_scale_outcomes_correlation", "correlation_id"),
)


def artifact_key(event: CloudEvent) -> str:
    """Correlation id + the artifact's source: the same artifact of the same submission."""
    data = event.data
    if event.is_dlq:
        original = data.get("original") or {}
        data = original.get("data", {}) if isinstance(original, dict) else {}
    artifact = data.get("artifact") if isinstance(data, dict) else None
    artifact = artifact if isinstance(artifact, dict) else {}
    source = artifact.get("source") or artifact.get("path") or artifact.get("name")
    if not source:  # an unparseable original: the record itself is the artifact
        source = f"event:{event.causationid or event.id}"
    return hashlib.sha256(f"{event.correlationid}\n{source}".encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """One recorded terminal event of an artifact."""

    kind: str
    status: str
    event: CloudEvent

    @property
    def record(self) -> ArtifactRecord:
        return record_from_event(self.event)


class OutcomeStore:
    """Terminal records (voxel or DLQ) by correlation id, in the voxel database."""

    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.engine = engine or make_engine(settings.resolved_database_url)
        try:
            _metadata.create_all(self.engine, checkfirst=True)
        except SQLAlchemyError:  # a concurrent first use created it: check again
            _metadata.create_all(self.engine, checkfirst=True)

    def close(self) -> None:
        self.engine.dispose()

    def _dialect_insert(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(outcomes)
        return sqlite.insert(outcomes)

    def _insert_voxels(self) -> Any:
        return self._dialect_insert().on_conflict_do_nothing()

    def _upsert_dlq(self) -> Any:
        """A DLQ row is written once; only a ``replayed`` row takes a newer failure (reopened)."""
        stmt = self._dialect_insert()
        return stmt.on_conflict_do_update(
            index_elements=[outcomes.c.artifact_key, outcomes.c.kind],
            set_={
                "event_id": stmt.excluded.event_id,
                "event": stmt.excluded.event,
                "stage": stmt.excluded.stage,
                "reason": stmt.excluded.reason,
                "status": "open",
            },
            where=outcomes.c.status == "replayed",
        )

    def record_many(self, events: Iterable[CloudEvent]) -> int:
        """Record terminal events (idempotent); returns how many were new."""
        rows = []
        voxel_keys = []
        for event in events:
            key = artifact_key(event)
            if event.is_dlq:
                kind, status = "dlq", "open"
                stage, reason, voxel_id = event.data.get("stage"), event.data.get("reason"), None
            else:
                kind, status, stage, reason = "voxel", "ok", None, None
                voxel = event.data.get("voxel") or {}
                voxel_id = voxel.get("id") if isinstance(voxel, dict) else None
                voxel_keys.append(key)
            rows.append(
                {
                    "artifact_key": key,
                    "kind": kind,
                    "correlation_id": event.correlationid,
                    "event_id": event.id,
                    "status": status,
                    "stage": None if stage is None else str(stage)[:32],
                    "reason": None if reason is None else str(reason)[:64],
                    "voxel_id": voxel_id,
                    "event": json.dumps(event.to_dict(), ensure_ascii=False),
                }
            )
        if not rows:
            return 0
        try:
            new = 0
            with self.engine.begin() as conn:
                for kind, stmt in (("dlq", self._upsert_dlq()), ("voxel", self._insert_voxels())):
                    chosen = [r for r in rows if r["kind"] == kind]
                    if chosen:
                        new += max(int(conn.execute(stmt, chosen).rowcount or 0), 0)
                if voxel_keys:
                    conn.execute(
                        update(outcomes)
                        .where(outcomes.c.artifact_key.in_(voxel_keys))
                        .where(outcomes.c.kind == "dlq")
                        .values(status="resolved")
                    )
                return new
        except SQLAlchemyError as exc:
            raise BackendError(f"cannot record outcomes: {exc}") from exc

    def record(self, event: CloudEvent) -> bool:
        return self.record_many([event]) == 1

    def by_correlation(self, correlation_ids: Iterable[str]) -> list[Outcome]:
        """Every outcome of these correlation ids (a DLQ row resolved by a voxel is left out)."""
        ids = list(correlation_ids)
        out: list[Outcome] = []
        try:
            with self.engine.connect() as conn:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    rows = conn.execute(
                        select(outcomes.c.kind, outcomes.c.status, outcomes.c.event)
                        .where(outcomes.c.correlation_id.in_(chunk))
                        .where(outcomes.c.status != "resolved")
                    )
                    out.extend(
                        Outcome(kind, status, CloudEvent.from_json(event))
                        for kind, status, event in rows
                    )
        except SQLAlchemyError as exc:
            raise BackendError(f"cannot read outcomes: {exc}") from exc
        return out

    def dlq(self, status: str = "open", limit: int = 50) -> list[Outcome]:
        """DLQ records with ``status`` (``open`` / ``resolved``), oldest first."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(outcomes.c.kind, outcomes.c.status, outcomes.c.event)
                    .where(outcomes.c.kind == "dlq")
                    .where(outcomes.c.status == status)
                    .order_by(outcomes.c.recorded_at)
                    .limit(limit)
                )
                return [Outcome(k, s, CloudEvent.from_json(e)) for k, s, e in rows]
        except SQLAlchemyError as exc:
            raise BackendError(f"cannot read outcomes: {exc}") from exc

    def dlq_get(self, event_id: str) -> Outcome | None:
        """The DLQ row whose current record has this id (any status)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(outcomes.c.kind, outcomes.c.status, outcomes.c.event)
                .where(outcomes.c.kind == "dlq")
                .where(outcomes.c.event_id == event_id)
            ).first()
        return None if row is None else Outcome(row[0], row[1], CloudEvent.from_json(row[2]))

    def mark_replayed(self, event_id: str) -> bool:
        """``open`` → ``replayed`` for this DLQ record; False when it was not open."""
        try:
            with self.engine.begin() as conn:
                result = conn.execute(
                    update(outcomes)
                    .where(outcomes.c.kind == "dlq")
                    .where(outcomes.c.event_id == event_id)
                    .where(outcomes.c.status == "open")
                    .values(status="replayed")
                )
                return int(result.rowcount or 0) == 1
        except SQLAlchemyError as exc:
            raise BackendError(f"cannot update outcomes: {exc}") from exc

    def counts(self) -> dict[str, int]:
        """Rows per kind and status (``voxel:ok``, ``dlq:open``…), for tests and ``doctor``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outcomes.c.kind, outcomes.c.status, func.count()).group_by(
                    outcomes.c.kind, outcomes.c.status
                )
            )
            return {f"{k}:{s}": int(n) for k, s, n in rows}
