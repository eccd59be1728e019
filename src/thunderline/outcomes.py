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
  a voxel;
* ``dismissed`` -- an operator closed it without a replay (:meth:`OutcomeStore.dismiss`: who,
  when, why); it leaves the open list and the open-DLQ gauge.

Each DLQ row also keeps (migration ``0006_dlq_triage``) whether its error type is
``retryable`` (recorded when the record was built; for older rows derived from the stored
error type through :func:`thunderline.errors.retryable_by_name`) and its ``group_key``: the
SHA-256 of (stage, reason, artifact), so repeated failures of one file form one group
(:meth:`OutcomeStore.dlq_groups`). :meth:`OutcomeStore.purge` deletes closed records (every
status but ``open``) older than a cut-off.

A replay that fails again leaves the old record ``replayed`` and adds a new ``open`` one.
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

from sqlalchemy import Engine, and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from thunderline import names
from thunderline.config import Settings
from thunderline.dlq.record import Subject
from thunderline.errors import retryable_by_name
from thunderline.events import VOXEL_CREATED, CloudEvent
from thunderline.voxel.db import backend_errors, insert_ignore, make_engine, migrate
from thunderline.voxel.tables import outcomes

OPEN = "open"
REPLAYED = "replayed"
RESOLVED = "resolved"
DISMISSED = "dismissed"
OK = "ok"
DlqStatus = Literal["open", "replayed", "resolved", "dismissed"]
DLQ_STATUSES: tuple[str, ...] = (OPEN, REPLAYED, RESOLVED, DISMISSED)
#: Statuses of a record nobody has to act on any more (``purge`` deletes only these).
CLOSED_STATUSES: tuple[str, ...] = (REPLAYED, RESOLVED, DISMISSED)
#: Characters of a group id as shown (the start of the group key).
GROUP_ID_LEN = 12


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
    #: the error type's ``retryable`` (``None``: the registry cannot say)
    retryable: bool | None = None
    group_key: str | None = None
    dismissed_unix: float | None = None
    dismissed_by: str | None = None
    dismiss_note: str | None = None

    @property
    def short_id(self) -> str:
        """The id people type (:func:`thunderline.ids.short`)."""
        from thunderline.ids import short

        return short(self.id)

    @property
    def group_id(self) -> str | None:
        """The group's id as shown and typed (the start of :attr:`group_key`)."""
        return self.group_key[:GROUP_ID_LEN] if self.group_key else None

    @property
    def permanence(self) -> str:
        """``retryable``, ``permanent`` or ``unknown`` (the error type is not known)."""
        if self.retryable is None:
            return "unknown"
        return "retryable" if self.retryable else "permanent"

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``event`` as its dict; names as in memory)."""
        out = {k: v for k, v in self.__dict__.items() if k != "event"}
        out["artifact"] = artifact_key(self.event)
        if self.kind == "dlq":
            out["short_id"] = self.short_id
            out["group_id"] = self.group_id
            out["permanence"] = self.permanence
        out["event"] = self.event.to_dict()
        return out


def group_key(stage: str | None, reason: str | None, artifact: str | None) -> str:
    """The group of a DLQ record: SHA-256 of (stage, reason, artifact as stored).

    Repeated failures of one file at one stage for one reason are therefore one group (also across
    ingests).
    """
    text = "\x00".join(part or "" for part in (stage, reason, artifact))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def recorded_retryable(event: CloudEvent) -> bool | None:
    """A DLQ record's ``retryable``: as recorded when built, else derived from its error type.

    The derivation goes from the error type (and reason) through the error registry -- never from
    the message text.
    """
    data = event.data if isinstance(event.data, dict) else {}
    flag = data.get("retryable")
    if isinstance(flag, bool):
        return flag
    error = data.get("error")
    type_name = error.get("type") if isinstance(error, dict) else None
    reason = data.get("reason")
    return retryable_by_name(str(type_name) if type_name else None, str(reason) if reason else None)


@dataclass(frozen=True)
class DlqGroup:
    """Repeated failures of one artifact at one stage for one reason.

    It holds how many, first and last seen, and the latest record (which says whether they are
    retryable).
    """

    key: str
    stage: str | None
    reason: str | None
    artifact: str | None
    count: int
    first_unix: float
    last_unix: float
    latest: OutcomeRecord

    @property
    def id(self) -> str:
        """The group id as shown and typed (the start of the key)."""
        return self.key[:GROUP_ID_LEN]

    @property
    def retryable(self) -> bool | None:
        """Whether the latest failure's error type is retryable."""
        return self.latest.retryable

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the group and its latest record."""
        return {
            "group_id": self.id,
            "group_key": self.key,
            "stage": self.stage,
            "reason": self.reason,
            "artifact": artifact_key(self.latest.event),
            "count": self.count,
            "first_unix": self.first_unix,
            "last_unix": self.last_unix,
            "retryable": self.retryable,
            "permanence": self.latest.permanence,
            "latest": self.latest.to_json_dict(),
        }


def artifact_key(event: CloudEvent) -> str | None:
    """What the record is about (:attr:`thunderline.dlq.record.Subject.key`)."""
    return Subject.of(event).key


def once_key(kind: str, correlation_id: str, artifact: str | None) -> str | None:
    """The key that makes a row once per (kind, ingest, artifact).

    ``None`` without an artifact (such rows are only idempotent by event id).
    """
    if artifact is None:
        return None
    text = f"{kind}\x00{correlation_id}\x00{names.wire_text(artifact)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _row(event: CloudEvent) -> dict[str, Any]:
    artifact = artifact_key(event)
    if event.is_dlq:
        kind, status = "dlq", OPEN
        stage, reason, voxel_id = event.data.get("stage"), event.data.get("reason"), None
    else:
        kind, status, stage, reason = "voxel", OK, None, None
        voxel = event.data.get("voxel")
        voxel_id = voxel.get("id") if isinstance(voxel, dict) else None
    stored = names.wire_text(artifact) if artifact is not None else None
    return {
        "id": event.id,
        "correlation_id": event.correlationid,
        "artifact": stored,
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
        "retryable": recorded_retryable(event) if kind == "dlq" else None,
        "group_key": group_key(
            str(stage) if stage is not None else None,
            str(reason) if reason is not None else None,
            stored,
        )
        if kind == "dlq"
        else None,
        "dismissed_unix": None,
        "dismissed_by": None,
        "dismiss_note": None,
    }


def _from_row(row: Any) -> OutcomeRecord:
    event = CloudEvent.from_dict(json.loads(row["event"]))
    retryable = row["retryable"]
    if retryable is None and row["kind"] == "dlq":  # written before 0006_dlq_triage
        retryable = recorded_retryable(event)
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
        event=event,
        retryable=None if retryable is None else bool(retryable),
        group_key=row["group_key"],
        dismissed_unix=row["dismissed_unix"],
        dismissed_by=row["dismissed_by"],
        dismiss_note=row["dismiss_note"],
    )


def _check_status(status: str | None) -> None:
    if status is not None and status not in DLQ_STATUSES:
        raise ValueError(f"unknown DLQ status {status!r}: use one of {DLQ_STATUSES}")


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
        """Release the database engine when this store made it."""
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
        """Record terminal events (idempotent by event id); other events are ignored.

        A voxel resolves the replayed DLQ records of the same correlation id and artifact.
        """
        rows = [_row(e) for e in events if e.is_dlq or e.type == VOXEL_CREATED]
        if not rows:
            return
        with backend_errors("outcome write"), self.engine.begin() as conn:
            conn.execute(insert_ignore(self.engine, outcomes), rows)
            for row in rows:
                if row["kind"] != "voxel":
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
        """Claim an ``open`` DLQ record for a replay; False if it was not open.

        False means it was already replayed or resolved (by this process or another): then send
        nothing.
        """
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
        """Undo a claim whose replay could not be sent: the record is ``open`` again.

        Its once-key comes back too, unless another open record of the artifact took it meanwhile.
        """
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
        """A full correlation id from a short id, a unique part of either end, or the id.

        References follow :mod:`thunderline.ids`. None when nothing matches, ``AmbiguousIdError`` on
        many.
        """
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
        self,
        status: str | None = OPEN,
        *,
        limit: int = 50,
        cursor: str | None = None,
        group: str | None = None,
    ) -> list[OutcomeRecord]:
        """DLQ records oldest first, of one status (``None``: every status), after id ``cursor``.

        Ids sort by time: pass the last id of a page as ``cursor`` to get the next. Only one group
        (its full key, :meth:`resolve_group`) if given.
        """
        _check_status(status)
        stmt = select(outcomes).where(outcomes.c.kind == "dlq")
        if status is not None:
            stmt = stmt.where(outcomes.c.status == status)
        if group is not None:
            stmt = stmt.where(outcomes.c.group_key == group)
        if cursor:
            stmt = stmt.where(outcomes.c.id > cursor)
        return self._select(stmt.order_by(outcomes.c.id).limit(limit))

    def dlq_get(self, record_id: str) -> OutcomeRecord | None:
        """One DLQ record by its full id, short id or a unique part of either end.

        References follow :mod:`thunderline.ids`; None when nothing matches. A malformed reference
        raises ``IdReferenceError``, one that matches several records ``AmbiguousIdError``.
        """
        from thunderline import ids as idref

        parsed = idref.parse_ref(record_id, what="DLQ id")
        stmt = (
            select(outcomes)
            .where(outcomes.c.kind == "dlq", idref.id_condition(outcomes.c.id, parsed))
            .limit(5)
        )
        found = self._select(stmt)
        chosen = idref.pick(parsed, [r.id for r in found], what="DLQ id")
        return next((r for r in found if r.id == chosen), None)

    def resolve_group(self, ref: str) -> str | None:
        """A group's full key from its id (the start of the key, 4+ hex digits) or the key.

        None when no DLQ record has it, ``AmbiguousIdError`` when several groups start so.
        """
        from thunderline import ids as idref

        text = ref.strip().lower()
        if len(text) < idref.MIN_REF or any(c not in "0123456789abcdef" for c in text):
            raise idref.IdReferenceError(
                f"group {ref!r} is not a group id ({idref.MIN_REF}+ hex digits of it)"
            )
        column = outcomes.c.group_key
        stmt = (
            select(column)
            .where(outcomes.c.kind == "dlq", column.like(f"{text}%"))
            .distinct()
            .limit(5)
        )
        with backend_errors("outcome read"), self.engine.connect() as conn:
            found = sorted({str(row[0]) for row in conn.execute(stmt)})
        if len(found) > 1:
            raise idref.AmbiguousIdError(text, [k[:GROUP_ID_LEN] for k in found], what="group")
        return found[0] if found else None

    def dlq_groups(
        self, status: str | None = OPEN, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[DlqGroup], int]:
        """DLQ records of one status grouped by (stage, reason, artifact), latest failure first.

        ``status=None`` means every status. Returns a page of groups (each with its count, first and
        last time and latest record) and the number of groups.
        """
        _check_status(status)
        where = [outcomes.c.kind == "dlq"]
        if status is not None:
            where.append(outcomes.c.status == status)
        grouped = (
            select(
                outcomes.c.group_key,
                func.count().label("n"),
                func.min(outcomes.c.created_unix).label("first"),
                func.max(outcomes.c.created_unix).label("last"),
                func.max(outcomes.c.id).label("latest"),
            )
            .where(*where)
            .group_by(outcomes.c.group_key)
        )
        page = grouped.order_by(func.max(outcomes.c.id).desc()).limit(limit).offset(offset)
        total_stmt = select(func.count()).select_from(grouped.subquery())
        with backend_errors("outcome read"), self.engine.connect() as conn:
            rows = conn.execute(page).all()
            total = int(conn.execute(total_stmt).scalar_one())
        latest = {
            r.id: r
            for r in self._select(
                select(outcomes).where(outcomes.c.id.in_([row.latest for row in rows]))
            )
        }
        groups = []
        for row in rows:
            record = latest[row.latest]
            groups.append(
                DlqGroup(
                    key=str(row.group_key or group_key(record.stage, record.reason, None)),
                    stage=record.stage,
                    reason=record.reason,
                    artifact=record.artifact,
                    count=int(row.n),
                    first_unix=float(row.first),
                    last_unix=float(row.last),
                    latest=record,
                )
            )
        return groups, total

    def dismiss(self, record_ids: Sequence[str], *, by: str, note: str) -> list[str]:
        """Close open DLQ records without a replay; returns the ids dismissed.

        The status goes ``open`` -> ``dismissed``, with who, when and why; a record no longer open
        is left as it is. The once-key is given up, so a later failure of the artifact is a new open
        record.
        """
        ids = list(dict.fromkeys(record_ids))
        done: list[str] = []
        now = time.time()
        with backend_errors("outcome update"), self.engine.begin() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                found = conn.execute(
                    select(outcomes.c.id).where(
                        outcomes.c.id.in_(chunk),
                        outcomes.c.kind == "dlq",
                        outcomes.c.status == OPEN,
                    )
                ).all()
                hit = [str(row[0]) for row in found]
                if not hit:
                    continue
                conn.execute(
                    update(outcomes)
                    .where(
                        outcomes.c.id.in_(hit),
                        outcomes.c.kind == "dlq",
                        outcomes.c.status == OPEN,
                    )
                    .values(
                        status=DISMISSED,
                        once_key=None,
                        dismissed_unix=now,
                        dismissed_by=by,
                        dismiss_note=note,
                    )
                )
                done.extend(hit)
        return done

    def purge(self, older_than_unix: float, *, dry_run: bool = False) -> dict[str, int]:
        """Delete closed DLQ records created before ``older_than_unix``; returns counts per status.

        Closed means replayed, resolved or dismissed -- never open ones. With ``dry_run`` it returns
        how many would go, deleting nothing.
        """
        where = and_(
            outcomes.c.kind == "dlq",
            outcomes.c.status.in_(CLOSED_STATUSES),
            outcomes.c.created_unix < older_than_unix,
        )
        count = select(outcomes.c.status, func.count()).where(where).group_by(outcomes.c.status)
        with backend_errors("outcome purge"), self.engine.begin() as conn:
            found = {str(s): int(n) for s, n in conn.execute(count)}
            if not dry_run and found:
                conn.execute(delete(outcomes).where(where))
        return found

    def counts(self) -> dict[str, int]:
        """Records per status.

        ``ok`` for voxels; ``open``/``replayed``/``resolved``/``dismissed`` for DLQ records.
        """
        stmt = select(outcomes.c.status, func.count()).group_by(outcomes.c.status)
        with backend_errors("outcome read"), self.engine.connect() as conn:
            return {str(s): int(n) for s, n in conn.execute(stmt)}


__all__ = [
    "CLOSED_STATUSES",
    "DISMISSED",
    "DLQ_STATUSES",
    "GROUP_ID_LEN",
    "OK",
    "OPEN",
    "REPLAYED",
    "RESOLVED",
    "DlqGroup",
    "DlqStatus",
    "OutcomeRecord",
    "OutcomeStore",
    "artifact_key",
    "group_key",
    "once_key",
    "recorded_retryable",
]
