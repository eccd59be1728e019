"""Deleting voxels, retention, payload garbage collection and the deletion audit.

* :func:`delete_voxels` removes voxels (with ``with_descendants`` their whole subtree, children
  first; without it a voxel that has descendants is refused, since their sealed lineage would
  name a voxel that is gone). In one transaction (the search index entry included) each
  deleted voxel leaves a row in
  ``voxel_deletions`` -- who, when, why and the full sealed document -- its lineage edges go,
  and ledger entries that pointed at it (:mod:`thunderline.sources`) lose the pointer
  (``outcome = 'deleted'``).
* Then each payload (and each extracted-text object) is **garbage-collected** once nothing
  references it: no voxel has that
  SHA-256 (several voxels can share bytes) and no open DLQ record names it (a replay needs
  its bytes). The inline copy and the object-store object are removed and the audit row says
  ``payload_removed``.
* :func:`retention_ids` selects voxels by age, label and source prefix; ``thunderline voxels
  retain`` deletes them (``--dry-run`` lists).
* :func:`check_references` is what ``voxels verify --all`` adds: no lineage edge or ledger entry
  naming a missing voxel, no inline payload row without a voxel, no object left behind by a
  deletion that removed its last reference.

A payload removed here can race with a concurrent ingest of the same bytes (the object is
deleted just after the new voxel was written): ``voxels verify`` reports such a voxel as
``payload_missing`` and re-ingesting the file restores it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from thunderline.errors import BackendError
from thunderline.obs import metrics
from thunderline.search.index import remove_voxels as remove_from_index
from thunderline.voxel.errors import HasDescendantsError, VoxelNotFoundError
from thunderline.voxel.store import text_sha256
from thunderline.voxel.tables import (
    outcomes,
    source_entries,
    voxel_deletions,
    voxel_edges,
    voxel_payloads,
    voxel_results,
    voxel_revisions,
    voxel_tags,
    voxels,
)

if TYPE_CHECKING:
    from thunderline.config import Settings
    from thunderline.sources.ledger import Ledger
    from thunderline.voxel.store import VoxelStore


@runtime_checkable
class _Deletable(Protocol):
    def delete(self, sha256: str) -> None: ...


@dataclass(frozen=True)
class Deletion:
    """One audit record of ``voxel_deletions``."""

    id: str
    voxel_id: str
    payload_sha256: str
    payload_removed: bool
    source: str
    label: str | None
    actor: str
    reason: str
    deleted_unix: float

    def to_json_dict(self) -> dict[str, Any]:
        """Every field of the audit record by name, as JSON-ready values."""
        return dict(self.__dict__)


def _deletion(row: Any) -> Deletion:
    return Deletion(**{name: row[name] for name in Deletion.__dataclass_fields__})


def delete_voxels(
    store: VoxelStore,
    voxel_ids: Sequence[str],
    *,
    actor: str,
    reason: str,
    with_descendants: bool = False,
) -> list[Deletion]:
    """Delete voxels (ids or unique prefixes) with an audit record each, then collect payloads.

    Returns the audit records (``payload_removed`` as it ended).

    Raises:
        VoxelNotFoundError: an id names no voxel.
        HasDescendantsError: a voxel has descendants and ``with_descendants`` is false.
        BackendError: the database failed.
    """
    full = [v if len(v) == 36 else store.resolve_id(v) for v in voxel_ids]
    doomed: list[str] = []
    for voxel_id in full:
        store.get(voxel_id)  # exists (and its document is intact)
        below = store.descendants(voxel_id)
        if below and not with_descendants:
            raise HasDescendantsError(
                f"voxel {voxel_id} has {len({e.child_id for e in below})} descendant(s): "
                "use --with-descendants",
                details={"voxel_id": voxel_id},
            )
        # children before parents: deepest first (an edge list is parent -> child order)
        for voxel in [*reversed([e.child_id for e in below]), voxel_id]:
            if voxel not in doomed:
                doomed.append(voxel)
    if not doomed:
        return []
    now = time.time()
    texts = {t for t in (text_sha256(store.get(v)) for v in doomed) if t is not None}
    texts |= _result_texts(store, doomed)  # texts of reprocessed extract results
    try:
        with store.engine.begin() as conn:
            records = _delete_rows(conn, doomed, actor=actor, reason=reason, now=now)
    except SQLAlchemyError as exc:
        raise BackendError(f"voxel delete failed: {exc}") from exc
    metrics.VOXELS_DELETED.inc(len(records))
    removed = collect_payloads(store, {r.payload_sha256 for r in records})
    collect_texts(store, texts)
    return [
        Deletion(**{**r.__dict__, "payload_removed": r.payload_sha256 in removed}) for r in records
    ]


def _delete_rows(
    conn: Connection, doomed: list[str], *, actor: str, reason: str, now: float
) -> list[Deletion]:
    rows = {
        r["id"]: r
        for r in conn.execute(
            select(
                voxels.c.id, voxels.c.payload_sha256, voxels.c.source, voxels.c.label, voxels.c.doc
            ).where(voxels.c.id.in_(doomed))
        ).mappings()
    }
    missing = [v for v in doomed if v not in rows]
    if missing:
        raise VoxelNotFoundError(f"no voxel {missing[0]}", details={"missing": missing[:10]})
    records = [
        Deletion(
            id=str(uuid.uuid4()),
            voxel_id=v,
            payload_sha256=rows[v]["payload_sha256"],
            payload_removed=False,
            source=rows[v]["source"],
            label=rows[v]["label"],
            actor=actor,
            reason=reason,
            deleted_unix=now,
        )
        for v in doomed
    ]
    conn.execute(
        voxel_deletions.insert(),
        [{**r.to_json_dict(), "doc": rows[r.voxel_id]["doc"]} for r in records],
    )
    conn.execute(
        delete(voxel_edges).where(
            or_(voxel_edges.c.child_id.in_(doomed), voxel_edges.c.parent_id.in_(doomed))
        )
    )
    conn.execute(delete(voxels).where(voxels.c.id.in_(doomed)))
    # the documents completions replaced go with the voxel (the audit keeps the last one)
    conn.execute(delete(voxel_revisions).where(voxel_revisions.c.voxel_id.in_(doomed)))
    remove_from_index(conn, doomed)  # the search index, in the same transaction
    conn.execute(
        update(source_entries)
        .where(source_entries.c.voxel_id.in_(doomed))
        .values(voxel_id=None, outcome="deleted", updated_unix=now)
    )
    conn.execute(
        update(source_entries)
        .where(source_entries.c.duplicate_of.in_(doomed))
        .values(duplicate_of=None, updated_unix=now)
    )
    return records


def collect_payloads(store: VoxelStore, shas: Iterable[str]) -> set[str]:
    """Remove each payload no voxel and no open DLQ record references; the ones removed."""
    removed: set[str] = set()
    for sha in sorted(set(shas)):
        try:
            with store.engine.begin() as conn:
                used = conn.scalar(select(exists().where(voxels.c.payload_sha256 == sha)))
                pending = conn.scalar(
                    select(
                        exists().where(
                            and_(
                                outcomes.c.kind == "dlq",
                                outcomes.c.status == "open",
                                outcomes.c.event.contains(sha),
                            )
                        )
                    )
                )
                if used or pending:
                    continue
                conn.execute(delete(voxel_payloads).where(voxel_payloads.c.sha256 == sha))
                conn.execute(
                    update(voxel_deletions)
                    .where(voxel_deletions.c.payload_sha256 == sha)
                    .values(payload_removed=True)
                )
        except SQLAlchemyError as exc:
            raise BackendError(f"payload garbage collection failed: {exc}") from exc
        if isinstance(store.objects, _Deletable):
            store.objects.delete(sha)
        removed.add(sha)
        metrics.PAYLOADS_COLLECTED.inc()
    return removed


def collect_texts(store: VoxelStore, shas: Iterable[str]) -> set[str]:
    """Remove each extracted-text object (``traits.extract.text_ref``) no remaining voxel names.

    Found by a substring search of the sealed documents: one scan per text.
    """
    removed: set[str] = set()
    for sha in sorted(set(shas)):
        try:
            with store.engine.connect() as conn:
                used = conn.scalar(
                    select(
                        exists().where(
                            or_(
                                voxels.c.doc.contains(f"sha256:{sha}"),
                                voxels.c.payload_sha256 == sha,
                            )
                        )
                    )
                ) or conn.scalar(
                    select(exists().where(voxel_results.c.result.contains(f"sha256:{sha}")))
                )
        except SQLAlchemyError as exc:
            raise BackendError(f"text garbage collection failed: {exc}") from exc
        if used:
            continue
        if isinstance(store.objects, _Deletable):
            store.objects.delete(sha)
        removed.add(sha)
    return removed


def _result_texts(store: VoxelStore, voxel_ids: Sequence[str]) -> set[str]:
    """The extracted-text objects the result versions of these voxels name."""
    texts: set[str] = set()
    try:
        with store.engine.connect() as conn:
            for start in range(0, len(voxel_ids), 500):
                for raw in conn.scalars(
                    select(voxel_results.c.result).where(
                        and_(
                            voxel_results.c.voxel_id.in_(voxel_ids[start : start + 500]),
                            voxel_results.c.stage == "extract",
                        )
                    )
                ):
                    ref = json.loads(raw).get("text_ref")
                    if isinstance(ref, str) and ref.startswith("sha256:"):
                        texts.add(ref[7:])
    except SQLAlchemyError as exc:
        raise BackendError(f"result versions read failed: {exc}") from exc
    return texts


def deletions(store: VoxelStore, *, limit: int = 100) -> list[Deletion]:
    """The deletion audit, newest first."""
    stmt = (
        select(voxel_deletions)
        .order_by(voxel_deletions.c.deleted_unix.desc(), voxel_deletions.c.id)
        .limit(limit)
    )
    try:
        with store.engine.connect() as conn:
            return [_deletion(r) for r in conn.execute(stmt).mappings()]
    except SQLAlchemyError as exc:
        raise BackendError(f"deletion audit read failed: {exc}") from exc


def retention_ids(
    store: VoxelStore,
    *,
    older_than_s: float | None = None,
    label: str | None = None,
    source_prefix: str | None = None,
    now: float | None = None,
) -> list[str]:
    """Voxels matching every given rule, oldest first; no rule given: none.

    The rules: ingested before ``now - older_than_s``, of this Magika label, from a source
    starting with the prefix.
    """
    if older_than_s is None and label is None and source_prefix is None:
        return []
    stmt = select(voxels.c.id).order_by(voxels.c.ts_unix, voxels.c.id)
    if older_than_s is not None:
        stmt = stmt.where(voxels.c.ts_unix < (now or time.time()) - older_than_s)
    if label is not None:
        stmt = stmt.where(voxels.c.label == label)
    if source_prefix is not None:
        stmt = stmt.where(voxels.c.source.startswith(source_prefix, autoescape=True))
    try:
        with store.engine.connect() as conn:
            return [str(v) for v in conn.scalars(stmt)]
    except SQLAlchemyError as exc:
        raise BackendError(f"retention query failed: {exc}") from exc


def check_references(store: VoxelStore) -> list[str]:
    """Dangling references and orphans (empty when the store is clean)."""
    problems: list[str] = []
    try:
        with store.engine.connect() as conn:
            v = voxels.alias("v")
            for end in ("child_id", "parent_id"):
                col = voxel_edges.c[end]
                rows = conn.execute(
                    select(voxel_edges.c.child_id, voxel_edges.c.parent_id).where(
                        ~exists().where(v.c.id == col)
                    )
                ).all()
                problems += [f"lineage edge {c} -> {p}: {end} is no voxel" for c, p in rows]
            for (sha,) in conn.execute(
                select(voxel_payloads.c.sha256).where(
                    ~exists().where(voxels.c.payload_sha256 == voxel_payloads.c.sha256)
                )
            ):
                problems.append(f"inline payload sha256:{sha} is referenced by no voxel")
            for entry_id, voxel_id in conn.execute(
                select(source_entries.c.id, source_entries.c.voxel_id).where(
                    and_(
                        source_entries.c.voxel_id.is_not(None),
                        ~exists().where(voxels.c.id == source_entries.c.voxel_id),
                    )
                )
            ):
                problems.append(f"source entry {entry_id} names missing voxel {voxel_id}")
            for table, what in ((voxel_results, "result version"), (voxel_tags, "tag")):
                for (voxel_id,) in conn.execute(
                    select(table.c.voxel_id)
                    .where(~exists().where(voxels.c.id == table.c.voxel_id))
                    .distinct()
                ):
                    problems.append(f"{what} of missing voxel {voxel_id}")
            gone = conn.scalars(
                select(voxel_deletions.c.payload_sha256)
                .where(
                    and_(
                        voxel_deletions.c.payload_removed.is_(True),
                        ~exists().where(
                            voxels.c.payload_sha256 == voxel_deletions.c.payload_sha256
                        ),
                    )
                )
                .distinct()
            ).all()
    except SQLAlchemyError as exc:
        raise BackendError(f"reference check failed: {exc}") from exc
    for sha in gone:
        if store.objects.exists(sha):
            problems.append(f"object sha256:{sha} outlived its last voxel (deleted)")
    return problems


def delete_for_entries(settings: Settings, ledger: Ledger, entry_ids: Sequence[str]) -> int:
    """``TL_SOURCE_DELETE_POLICY=delete``: delete the voxels of entries deleted at their source.

    A voxel another current entry still points at is kept. Returns how many voxels were
    deleted (with their descendants: archive members).
    """
    from thunderline.voxel.store import VoxelStore

    entries = [e for e in (ledger.get(i) for i in entry_ids) if e is not None and e.voxel_id]
    if not entries:
        return 0
    voxel_ids = sorted({str(e.voxel_id) for e in entries})
    still = {
        str(e.voxel_id) for e in ledger.referencing(voxel_ids) if e.current and e.state != "deleted"
    }
    doomed = [v for v in voxel_ids if v not in still]
    if not doomed:
        return 0
    with VoxelStore(settings) as store:
        present = [v for v in doomed if _exists(store, v)]
        records = delete_voxels(
            store,
            present,
            actor="sources",
            reason=json.dumps({"policy": "source_delete", "entries": list(entry_ids)[:20]}),
            with_descendants=True,
        )
    return len(records)


def _exists(store: VoxelStore, voxel_id: str) -> bool:
    try:
        store.get(voxel_id)
    except VoxelNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class DuplicateGroup:
    """Bytes stored more than once: the voxels that hold them and the entries linked to them."""

    payload_sha256: str
    voxel_ids: list[str]
    sources: list[str]
    linked_entries: list[str]  # source-ledger entry ids whose outcome is ``linked``
    linked_artifacts: list[str]  # artifacts of any way in (CLI, API, workers) linked to it

    def to_json_dict(self) -> dict[str, Any]:
        """Every field of the group by name, as JSON-ready values."""
        return dict(self.__dict__)


def duplicate_groups(store: VoxelStore, *, limit: int = 50) -> list[DuplicateGroup]:
    """Every payload SHA-256 held by two or more voxels, or by one voxel plus linked entries."""
    from sqlalchemy import func

    try:
        with store.engine.connect() as conn:
            shared = set(
                conn.scalars(
                    select(voxels.c.payload_sha256)
                    .group_by(voxels.c.payload_sha256)
                    .having(func.count() > 1)
                    .limit(limit)
                )
            )
            linked_rows = conn.execute(
                select(source_entries.c.id, voxels.c.payload_sha256)
                .join(voxels, voxels.c.id == source_entries.c.voxel_id)
                .where(source_entries.c.outcome == "linked")
            ).all()
            linked: dict[str, list[str]] = {}
            for entry_id, sha in linked_rows:
                linked.setdefault(sha, []).append(entry_id)
            artifacts: dict[str, list[str]] = {}  # voxel id -> artifacts linked to it
            for artifact, doc in conn.execute(
                select(outcomes.c.artifact, outcomes.c.event).where(
                    and_(outcomes.c.kind == "voxel", outcomes.c.event.contains('"duplicate_of":"'))
                )
            ):
                voxel = json.loads(doc).get("data", {}).get("voxel", {})
                if voxel.get("duplicate_of") and voxel.get("duplicate_of") == voxel.get("id"):
                    artifacts.setdefault(str(voxel["id"]), []).append(str(artifact))
            if artifacts:
                linked_shas = conn.execute(
                    select(voxels.c.id, voxels.c.payload_sha256).where(
                        voxels.c.id.in_(list(artifacts))
                    )
                ).all()
                by_sha = {sha: voxel_id for voxel_id, sha in linked_shas}
            else:
                by_sha = {}
            shas = sorted(shared | set(linked) | set(by_sha))[:limit]
            rows = conn.execute(
                select(voxels.c.id, voxels.c.payload_sha256, voxels.c.source)
                .where(voxels.c.payload_sha256.in_(shas))
                .order_by(voxels.c.ts_unix, voxels.c.id)
            ).all()
    except SQLAlchemyError as exc:
        raise BackendError(f"duplicate query failed: {exc}") from exc
    groups: dict[str, DuplicateGroup] = {
        sha: DuplicateGroup(
            sha,
            [],
            [],
            sorted(linked.get(sha, [])),
            sorted(artifacts.get(by_sha.get(sha, ""), [])),
        )
        for sha in shas
    }
    for voxel_id, sha, source in rows:
        groups[sha].voxel_ids.append(voxel_id)
        groups[sha].sources.append(source)
    return list(groups.values())
