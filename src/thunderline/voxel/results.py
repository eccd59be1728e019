"""Result versions: every extract, NLP and inference result a voxel has had, one current.

A voxel is sealed with the results its ingest produced (``traits["extract"]``, ``["nlp"]``,
``["inference"]``); the sealed document never changes, so ``voxels verify`` stays clean however
often a stage is run again. ``thunderline reprocess`` adds versions in ``voxel_results``
(migration ``0007_results``):

* the first time a stage is reprocessed for a voxel, the sealed result becomes version 1
  (``run_id`` NULL, the ingest event's id), so both are kept side by side;
* each new result is version ``n + 1``, made by one reprocess run (at most one version per run,
  voxel and stage: a resumed run never adds a second), and becomes ``current`` -- exactly one
  row per (voxel, stage) is current, moved in the same transaction;
* every version names its **producer**, ``NAME@VERSION`` of the model or the extractor
  (:func:`producer_of`), and the event it was made for, whose parent is the voxel's own event:
  lineage names the model version.

Rows go with their voxel (``ON DELETE CASCADE``); :func:`~thunderline.voxel.lifecycle.
check_references` reports any left behind.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from thunderline.errors import BackendError
from thunderline.voxel.db import Tables
from thunderline.voxel.schema import Voxel
from thunderline.voxel.tables import voxel_results

#: Transactions :meth:`ResultVersions.add` tries when a concurrent writer of the same voxel and
#: stage takes the ``seq`` (or the run's row) first.
_CONFLICT_ATTEMPTS: Final = 3

#: The stages that can be run again, and the trait each one's result sits under.
STAGE_TRAITS: Final[dict[str, str]] = {"extract": "extract", "nlp": "nlp", "infer": "inference"}


def producer_of(stage: str, result: dict[str, Any]) -> str:
    """``NAME@VERSION`` of what made ``result``: the model, pipeline or extractor.

    The ONNX model (``model``, ``version``), the spaCy pipeline (``pipeline``:
    ``"name version"``) or the extractor (``library``, ``library_version``, with its
    ``method``).
    """
    if stage == "infer":
        return f"{result.get('model', '?')}@{result.get('version', '?')}"
    if stage == "nlp":
        name, _, version = str(result.get("pipeline") or "?").partition(" ")
        return f"{name}@{version or '?'}"
    if stage == "extract":
        library = result.get("library") or "?"
        version = result.get("library_version") or "?"
        method = result.get("method")
        return f"{library}@{version}" + (f" ({method})" if method else "")
    raise ValueError(f"unknown stage {stage!r}: {', '.join(STAGE_TRAITS)}")


@dataclass(frozen=True)
class ResultVersion:
    """One version of one stage's result for one voxel."""

    voxel_id: str
    stage: str
    seq: int
    producer: str
    current: bool
    result: dict[str, Any]
    run_id: str | None
    event_id: str
    created_unix: float
    id: str | None = None  # None: the sealed result, not reprocessed yet (no row)

    def to_json_dict(self) -> dict[str, Any]:
        """The version as JSON (the API's and ``voxels results --json``'s form)."""
        return dict(self.__dict__)


def sealed_version(voxel: Voxel, stage: str) -> ResultVersion | None:
    """The result the voxel was sealed with for ``stage``, as version 1 (None: it has none)."""
    result = voxel.traits.get(STAGE_TRAITS[stage])
    if not isinstance(result, dict):
        return None
    return ResultVersion(
        voxel_id=voxel.id,
        stage=stage,
        seq=1,
        producer=producer_of(stage, result),
        current=True,
        result=result,
        run_id=None,
        event_id=voxel.event_id,
        created_unix=voxel.ts.timestamp(),
    )


def _version(row: Any) -> ResultVersion:
    return ResultVersion(
        voxel_id=row["voxel_id"],
        stage=row["stage"],
        seq=int(row["seq"]),
        producer=row["producer"],
        current=bool(row["current"]),
        result=json.loads(row["result"]),
        run_id=row["run_id"],
        event_id=row["event_id"],
        created_unix=float(row["created_unix"]),
        id=row["id"],
    )


def current_results(conn: Any, voxel_ids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Voxel id -> stage -> the result of its current *stored* version (in ``conn``'s transaction).

    A stage never reprocessed has no stored row: its sealed result is current, and it is absent
    here.
    """
    c = voxel_results.c
    found: dict[str, dict[str, dict[str, Any]]] = {}
    ids = list(dict.fromkeys(voxel_ids))
    for start in range(0, len(ids), 500):
        stmt = select(c.voxel_id, c.stage, c.result).where(
            and_(c.voxel_id.in_(ids[start : start + 500]), c.current.is_(True))
        )
        for voxel_id, stage, result in conn.execute(stmt):
            found.setdefault(str(voxel_id), {})[str(stage)] = json.loads(result)
    return found


def current_view(voxel: Voxel, current: Mapping[str, dict[str, Any]]) -> Voxel:
    """``voxel`` as its current result versions describe it (what search indexes).

    A copy whose ``traits`` hold each stage's current result in place of the sealed one; the
    sealed document itself is untouched (``voxels verify`` still checks that one).
    """
    if not current:
        return voxel
    traits = dict(voxel.traits)
    for stage, result in current.items():
        traits[STAGE_TRAITS[stage]] = result
    return voxel.model_copy(update={"traits": traits})


class ResultVersions(Tables):
    """The ``voxel_results`` table (thread-safe; one engine)."""

    what = "result versions"

    def __enter__(self) -> ResultVersions:
        return self

    def versions(self, voxel: Voxel) -> dict[str, list[ResultVersion]]:
        """Every version of every stage's result for ``voxel``, oldest first, by stage.

        A stage never reprocessed shows its sealed result as version 1 (current).
        """
        c = voxel_results.c
        stmt = select(voxel_results).where(c.voxel_id == voxel.id).order_by(c.stage, c.seq)
        rows: list[ResultVersion] = self._run(
            "read", lambda conn: [_version(r) for r in conn.execute(stmt).mappings()]
        )
        out: dict[str, list[ResultVersion]] = {}
        for stage in STAGE_TRAITS:
            stored = [r for r in rows if r.stage == stage]
            if stored:
                out[stage] = stored
            elif (sealed := sealed_version(voxel, stage)) is not None:
                out[stage] = [sealed]
        return out

    def current(self, voxel: Voxel, stage: str) -> ResultVersion | None:
        """The current version of ``stage``'s result (the sealed one when never reprocessed)."""
        return next((v for v in self.versions(voxel).get(stage, []) if v.current), None)

    def add(
        self,
        voxel: Voxel,
        stage: str,
        result: dict[str, Any],
        *,
        run_id: str,
        event_id: str,
        then: Callable[[Any, ResultVersion], None] | None = None,
    ) -> ResultVersion:
        """Add ``result`` as the newest version of ``stage`` for ``voxel`` and make it current.

        The sealed result is kept as version 1 first. Idempotent per run: a second call for
        the same run returns the version the first one wrote. ``then(conn, version)`` runs in
        the same transaction after the write (the search index row is rewritten there), and
        again for an already written version, so a retry also repairs what follows it.

        Two calls at once for one voxel and stage (two collectors recording two copies of one
        item: the broker delivers at least once) both read the same highest ``seq``; the one
        that commits second breaks a unique key (``seq``, or ``run_id`` for the same run) and
        is run again in a new transaction, where it finds the other's version (same run:
        returned as written) or the new highest ``seq`` -- not an error for the caller.
        """
        if stage not in STAGE_TRAITS:
            raise ValueError(f"unknown stage {stage!r}: {', '.join(STAGE_TRAITS)}")
        c = voxel_results.c
        producer = producer_of(stage, result)

        def run(conn: Any) -> ResultVersion:
            mine = and_(c.voxel_id == voxel.id, c.stage == stage)
            done = (
                conn.execute(select(voxel_results).where(and_(mine, c.run_id == run_id)))
                .mappings()
                .first()
            )
            if done is not None:
                written = _version(done)
                if then is not None:
                    then(conn, written)
                return written
            now = time.time()
            top = conn.scalar(select(func.max(c.seq)).where(mine))
            if top is None:
                top = 0
                sealed = sealed_version(voxel, stage)
                if sealed is not None:
                    conn.execute(insert(voxel_results).values(**self._row(sealed, False)))
                    top = 1
            conn.execute(update(voxel_results).where(mine).values(current=False))
            fresh = ResultVersion(
                voxel_id=voxel.id,
                stage=stage,
                seq=int(top) + 1,
                producer=producer,
                current=True,
                result=result,
                run_id=run_id,
                event_id=event_id,
                created_unix=now,
                id=str(uuid.uuid4()),
            )
            conn.execute(insert(voxel_results).values(**self._row(fresh, True)))
            if then is not None:
                then(conn, fresh)
            return fresh

        for attempt in range(1, _CONFLICT_ATTEMPTS + 1):
            try:
                written: ResultVersion = self._run("write", run)
                return written
            except BackendError as exc:
                if attempt == _CONFLICT_ATTEMPTS or not isinstance(exc.__cause__, IntegrityError):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _row(version: ResultVersion, current: bool) -> dict[str, Any]:
        return {
            "id": version.id or str(uuid.uuid4()),
            "voxel_id": version.voxel_id,
            "stage": version.stage,
            "seq": version.seq,
            "producer": version.producer[:256],
            "current": current,
            "result": json.dumps(version.result, sort_keys=True),
            "run_id": version.run_id,
            "event_id": version.event_id,
            "created_unix": version.created_unix,
        }

    def views(self, voxels: Sequence[Voxel]) -> list[Voxel]:
        """Each voxel as its current result versions describe it (:func:`current_view`)."""
        if not voxels:
            return []
        found: dict[str, dict[str, dict[str, Any]]] = self._run(
            "read", lambda conn: current_results(conn, [v.id for v in voxels])
        )
        return [current_view(v, found.get(v.id, {})) for v in voxels]

    def set_current(
        self,
        voxel_id: str,
        stage: str,
        seq: int,
        *,
        then: Callable[[Any], None] | None = None,
    ) -> bool:
        """Make version ``seq`` of ``stage`` current (False: no such stored version).

        ``then(conn)`` runs in the same transaction after the move: the voxel's search index
        row is rewritten there. Call :meth:`~thunderline.sources.reprocess.ResultRecorder.
        set_current`, which passes it; without it the index row keeps the previous current
        version (``voxels verify --all`` reports it ``index_stale``).
        """
        c = voxel_results.c

        def run(conn: Any) -> bool:
            mine = and_(c.voxel_id == voxel_id, c.stage == stage)
            if conn.scalar(select(c.id).where(and_(mine, c.seq == seq))) is None:
                return False
            conn.execute(update(voxel_results).where(mine).values(current=c.seq == seq))
            if then is not None:
                then(conn)
            return True

        moved: bool = self._run("write", run)
        return moved

    def since(self, cursor_unix: float, cursor_id: str, *, limit: int = 500) -> list[ResultVersion]:
        """Versions made by reprocess runs after the cursor, oldest first.

        The ``reprocessed`` trigger of rules and webhooks reads them.
        """
        c = voxel_results.c
        stmt = (
            select(voxel_results)
            .where(
                and_(
                    c.run_id.is_not(None),
                    or_(
                        c.created_unix > cursor_unix,
                        and_(c.created_unix == cursor_unix, c.id > cursor_id),
                    ),
                )
            )
            .order_by(c.created_unix, c.id)
            .limit(limit)
        )
        rows: list[ResultVersion] = self._run(
            "read", lambda conn: [_version(r) for r in conn.execute(stmt).mappings()]
        )
        return rows
