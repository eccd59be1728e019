"""The outcomes store: how every artifact ended, by correlation id, and the DLQ bookkeeping.

The pipeline's collector records every terminal event -- ``system.voxel.created`` or a DLQ
record -- in the ``outcomes`` table of the voxel database (migrations ``0002_outcomes`` and
``0003_outcome_once``, SQLite and PostgreSQL), keyed by the event id, with the correlation id
and the artifact it is about.
A DLQ record has a status:

* ``open`` -- not replayed yet (what ``thunderline dlq list`` shows by default);
* ``replayed`` -- its original was sent through the pipeline again (:meth:`mark_replayed` claims
  it atomically: of two replays of one record only one sends anything);
* ``resolved`` -- after the replay the same artifact (same correlation id and artifact) ended as
  a voxel.

A replay that fails again leaves the old record ``replayed`` and adds a new ``open`` one.

A stage after classify that failed for good does not end its artifact: the artifact is stored
as a voxel without that stage's result, and the DLQ record names it (``voxel_id``). Its replay
completes the same voxel: the new ``system.voxel.created`` (``voxel.revision`` above 1) is not
a second voxel row (``once_key``) but replaces the event of the artifact's voxel row, and
resolves the record as any voxel of the artifact does.
Writes are idempotent: a redelivered terminal event is recorded once (event id), and so is
an artifact whose message was processed twice (after a broker cut the second run's terminal
event has a new id): ``once_key`` (migration ``0003_outcome_once``), the SHA-256 of (kind,
correlation id, artifact), is unique, so there is one ``voxel`` row and at most one ``open``
DLQ row per artifact of an ingest (``ON CONFLICT DO NOTHING``; a replayed DLQ row gives its
key up). The full event is kept as wire JSON (:mod:`thunderline.names`), so names round-trip
exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine, and_, select, update
from sqlalchemy.exc import IntegrityError

from thunderline import names
from thunderline.config import Settings
from thunderline.dlq.record import Subject
from thunderline.events import VOXEL_CREATED, CloudEvent
from thunderline.voxel.db import backend_errors, insert_ignore, make_engine, migrate
from thunderline.voxel.tables import outcomes

OPEN = "open"
REPLAYED = "replayed"
RESOLVED = "resolved"
OK = "ok"
DlqStatus = Literal["open", "replayed", "resolved"]
DLQ_STATUSES: tuple[str, ...] = (OPEN, REPLAYED, RESOLVED)


@dataclass(frozen=True)
class OutcomeRecord:
    """One terminal record: a voxel (``kind == "voxel"``) or a DLQ record (``"dlq"``)."""

    id: str
    correlation_id: str
    artifact: str | None
    kind: str
    status: str
    stage: str | None
    reason: str | None
    voxel_id: str | None
    event_type: str
    created_unix: float
    replay_event_id: str | None
    resolved_by: str | None
    event: CloudEvent

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``event`` as its dict; names as in memory)."""
        out = {k: v for k, v in self.__dict__.items() if k != "event"}
        out["artifact"] = artifact_key(self.event)
        out["event"] = self.event.to_dict()
        return out


def artifact_key(event: CloudEvent) -> str | None:
    """What the record is about (:attr:`thunderline.dlq.record.Subject.key`)."""
    return Subject.of(event).key


def once_key(kind: str, correlation_id: str, artifact: str | None) -> str | None:
    """The key that makes a row once per (kind, ingest, artifact); ``None`` without an
    artifact (such rows are only idempotent by event id)."""
    if artifact is None:
        return None
    text = f"{kind}\x00{correlation_id}\x00{names.wire_text(artifact)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _row(event: CloudEvent) -> dict[str, Any]:
    artifact = artifact_key(event)
    if event.is_dlq:
        kind, status = "dlq", OPEN
        stage, reason = event.data.get("stage"), event.data.get("reason")
        voxel_id = event.data.get("voxel_id")  # degraded: stored without the stage's result
    else:
        kind, status, stage, reason = "voxel", OK, None, None
        voxel = event.data.get("voxel")
        voxel_id = voxel.get("id") if isinstance(voxel, dict) else None
    return {
        "id": event.id,
        "correlation_id": event.correlationid,
        "artifact": names.wire_text(artifact) if artifact is not None else None,
        "kind": kind,
        "status": status,
        "stage": str(stage) if stage is not None else None,
        "reason": str(reason) if reason is not None else None,
        "voxel_id": str(voxel_id) if voxel_id else None,
        "event_type": event.type,
        "created_unix": time.time(),
        "replay_event_id": None,
        "resolved_by": None,
        "event": event.to_json(),
        "once_key": once_key(kind, event.correlationid, artifact),
    }


def _revision(event: CloudEvent) -> int:
    """The voxel revision a ``system.voxel.created`` names (above 1: a replay completed it)."""
    voxel = event.data.get("voxel")
    revision = voxel.get("revision") if isinstance(voxel, dict) else None
    return revision if isinstance(revision, int) else 1


def _from_row(row: Any) -> OutcomeRecord:
    return OutcomeRecord(
        id=row["id"],
        correlation_id=row["correlation_id"],
        artifact=row["artifact"],
        kind=row["kind"],
        status=row["status"],
        stage=row["stage"],
        reason=row["reason"],
        voxel_id=row["voxel_id"],
        event_type=row["event_type"],
        created_unix=float(row["created_unix"]),
        replay_event_id=row["replay_event_id"],
        resolved_by=row["resolved_by"],
        event=CloudEvent.from_dict(json.loads(row["event"])),
    )


class OutcomeStore:
    """Terminal records in the voxel database (thread-safe; one engine per store)."""

    def __init__(self, settings: Settings | None = None, *, engine: Engine | None = None) -> None:
        if engine is None:
            if settings is None:
                raise ValueError("OutcomeStore needs settings or an engine")
            engine = make_engine(settings.resolved_database_url, settings.db)
            self._owns_engine = True
        else:
            self._owns_engine = False
        self.engine = engine
        try:
            self.revision = migrate(self.engine)
        except BaseException:
            if self._owns_engine:
                self.engine.dispose()
            raise

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> OutcomeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writes -------------------------------------------------------------------------
    def record(self, event: CloudEvent) -> None:
        """Record one terminal event (see :meth:`record_many`)."""
        self.record_many([event])

    def record_many(self, events: Sequence[CloudEvent]) -> None:
        """Record terminal events (idempotent by event id); a voxel resolves the replayed DLQ
        records of the same correlation id and artifact. Other events are ignored."""
        ends = [e for e in events if e.is_dlq or e.type == VOXEL_CREATED]
        rows = [_row(e) for e in ends]
        if not rows:
            return
        revisions = {e.id: _revision(e) for e in ends if not e.is_dlq}
        # a voxel stored without a failed stage's result does not resolve a replayed record:
        # the replay failed again (its new record is open)
        failed = {e.id for e in ends if not e.is_dlq and e.data.get("failures")}
        with backend_errors("outcome write"), self.engine.begin() as conn:
            conn.execute(insert_ignore(self.engine, outcomes), rows)
            for row in rows:
                if row["kind"] != "voxel":
                    continue
                if (
                    revisions.get(row["id"], 1) > 1
                ):  # a replay completed the voxel: its row says so now
                    conn.execute(
                        update(outcomes)
                        .where(
                            and_(
                                outcomes.c.kind == "voxel",
                                outcomes.c.voxel_id == row["voxel_id"],
                                outcomes.c.correlation_id == row["correlation_id"],
                                outcomes.c.id != row["id"],
                            )
                        )
                        .values(event=row["event"], event_type=row["event_type"])
                    )
                if row["id"] in failed:
                    continue
                conn.execute(
                    update(outcomes)
                    .where(
                        and_(
                            outcomes.c.kind == "dlq",
                            outcomes.c.status == REPLAYED,
                            outcomes.c.correlation_id == row["correlation_id"],
                            outcomes.c.artifact == row["artifact"]
                            if row["artifact"] is not None
                            else outcomes.c.artifact.is_(None),
                        )
                    )
                    .values(status=RESOLVED, resolved_by=row["id"])
                )

    def mark_replayed(self, record_id: str, replay_event_id: str) -> bool:
        """Claim an ``open`` DLQ record for a replay; False if it was not open (already
        replayed or resolved, by this process or another): then send nothing."""
        with backend_errors("outcome update"), self.engine.begin() as conn:
            result = conn.execute(
                update(outcomes)
                .where(
                    and_(
                        outcomes.c.id == record_id,
                        outcomes.c.kind == "dlq",
                        outcomes.c.status == OPEN,
                    )
                )
                .values(status=REPLAYED, replay_event_id=replay_event_id, once_key=None)
            )
            return bool(result.rowcount == 1)

    def reopen(self, record_id: str) -> None:
        """Undo a claim whose replay could not be sent (the record is ``open`` again, with
        its once-key back unless another open record of the artifact took it meanwhile)."""
        claimed = and_(outcomes.c.id == record_id, outcomes.c.status == REPLAYED)
        with backend_errors("outcome update"):
            with self.engine.begin() as conn:
                conn.execute(
                    update(outcomes).where(claimed).values(status=OPEN, replay_event_id=None)
                )
                row = conn.execute(
                    select(outcomes.c.correlation_id, outcomes.c.artifact).where(
                        outcomes.c.id == record_id
                    )
                ).first()
            if row is not None:
                key = once_key("dlq", row.correlation_id, row.artifact)
                with contextlib.suppress(IntegrityError), self.engine.begin() as conn:
                    conn.execute(
                        update(outcomes).where(outcomes.c.id == record_id).values(once_key=key)
                    )

    # ---- reads --------------------------------------------------------------------------
    def _select(self, stmt: Any) -> list[OutcomeRecord]:
        with backend_errors("outcome read"), self.engine.connect() as conn:
            return [_from_row(r) for r in conn.execute(stmt).mappings()]

    def by_correlation(self, correlation_id: str) -> list[OutcomeRecord]:
        """Every terminal record of one ingest (an archive has one per member), oldest first."""
        stmt = (
            select(outcomes)
            .where(outcomes.c.correlation_id == correlation_id)
            .order_by(outcomes.c.id)
        )
        return self._select(stmt)

    def resolve_correlation(self, ref: str) -> str | None:
        """A full correlation id from a short id, a unique part of either end, or the id
        (:mod:`thunderline.ids`); None when nothing matches, ``AmbiguousIdError`` on many."""
        from thunderline import ids as idref

        parsed = idref.parse_ref(ref, what="correlation id")
        column = outcomes.c.correlation_id
        stmt = select(column).where(idref.id_condition(column, parsed)).distinct().limit(5)
        with backend_errors("outcome read"), self.engine.connect() as conn:
            found = [str(row[0]) for row in conn.execute(stmt)]
        return idref.pick(parsed, found, what="correlation id")

    def by_correlations(self, correlation_ids: Sequence[str]) -> list[OutcomeRecord]:
        """Every terminal record of these ingests (one query per 500 ids), oldest first."""
        ids = list(dict.fromkeys(correlation_ids))
        found: list[OutcomeRecord] = []
        for start in range(0, len(ids), 500):
            stmt = select(outcomes).where(outcomes.c.correlation_id.in_(ids[start : start + 500]))
            found.extend(self._select(stmt.order_by(outcomes.c.id)))
        return found

    def dlq(
        self, status: str | None = OPEN, *, limit: int = 50, cursor: str | None = None
    ) -> list[OutcomeRecord]:
        """DLQ records oldest first, of one status (``None``: every status), after the record
        id ``cursor`` (ids sort by time: pass the last id of a page to get the next)."""
        if status is not None and status not in DLQ_STATUSES:
            raise ValueError(f"unknown DLQ status {status!r}: use one of {DLQ_STATUSES}")
        stmt = select(outcomes).where(outcomes.c.kind == "dlq")
        if status is not None:
            stmt = stmt.where(outcomes.c.status == status)
        if cursor:
            stmt = stmt.where(outcomes.c.id > cursor)
        return self._select(stmt.order_by(outcomes.c.id).limit(limit))

    def dlq_get(self, record_id: str) -> OutcomeRecord | None:
        """One DLQ record by id (or a unique prefix of 8+ characters)."""
        stmt = select(outcomes).where(outcomes.c.kind == "dlq")
        if len(record_id) >= 36:
            stmt = stmt.where(outcomes.c.id == record_id)
        else:
            # % and _ match only themselves (a LIKE pattern otherwise: issue 22)
            stmt = stmt.where(outcomes.c.id.startswith(record_id, autoescape=True)).limit(2)
        found = self._select(stmt)
        return found[0] if len(found) == 1 else None

    def counts(self) -> dict[str, int]:
        """Records per status (``ok`` for voxels; ``open``/``replayed``/``resolved``)."""
        from sqlalchemy import func

        stmt = select(outcomes.c.status, func.count()).group_by(outcomes.c.status)
        with backend_errors("outcome read"), self.engine.connect() as conn:
            return {str(s): int(n) for s, n in conn.execute(stmt)}


__all__ = [
    "DLQ_STATUSES",
    "OK",
    "OPEN",
    "REPLAYED",
    "RESOLVED",
    "DlqStatus",
    "OutcomeRecord",
    "OutcomeStore",
    "artifact_key",
    "once_key",
]
