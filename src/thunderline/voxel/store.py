"""The voxel store: metadata in SQLite/PostgreSQL, payloads inline or in the object store.

* **Idempotent.** ``voxels.dedup_key`` (SHA-256 of the voxel's source and payload SHA-256) is
  unique; a write is ``INSERT ... ON CONFLICT DO NOTHING`` and a conflicting writer reads the
  row that won. The same bytes from the same source, or the same event delivered twice, yield
  the existing voxel -- also with concurrent writers, threads or processes.
* **Content-addressed payloads.** Below ``settings.inline_payload_max_bytes`` the bytes go into
  ``voxel_payloads`` (one row per SHA-256); larger ones stay in the object store, where the
  classify stage already put them.
* **Verified on every read.** Payload bytes are re-hashed before they are returned and the
  voxel document is checked against its metadata SHA-256. A mismatch logs a ``[security]``
  warning, counts ``thunderline_voxel_checksum_mismatch_total`` and raises
  :class:`~thunderline.errors.ChecksumMismatch`; corrupt bytes are never served.
* **Acyclic lineage.** Edges are written in the same transaction as their voxel. For a batch of
  new voxels the check is done once per batch, in memory: a voxel created by this transaction
  has no edge yet, so the only cycles its edges can close run through the batch's own new
  edges (plus self-edges); every parent must exist (in the database or in the batch).
  :meth:`VoxelStore.add_parents` on an existing voxel checks each parent with the recursive
  CTE of :mod:`.lineage` instead.
* **Bulk writes.** :meth:`VoxelStore.put_many` writes a batch with one ``executemany`` per
  table (payloads and voxels with ``ON CONFLICT DO NOTHING``, lineage edges), one ``SELECT``
  of the written ids (which rows are ours) and, only when some already existed, one for the
  winners, in one transaction (all or none).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from pydantic import ValidationError
from sqlalchemy import Engine, RowMapping, bindparam, func, literal, select, update
from sqlalchemy.engine import Connection
from uuid6 import uuid7

from thunderline import ids, names
from thunderline.config import Settings
from thunderline.errors import PayloadNotFound
from thunderline.objects.base import ObjectStore, verify
from thunderline.search.hook import docs_for as search_docs_for
from thunderline.search.index import index_voxels
from thunderline.search.similar import vectors_for, write_vectors
from thunderline.voxel import lineage
from thunderline.voxel.db import (
    DriverInsert,
    DriverQuery,
    backend_errors,
    insert_ignore,
    make_engine,
    migrate,
)
from thunderline.voxel.errors import (
    InvalidVoxelError,
    InvalidVoxelIdError,
    LineageCycleError,
    PayloadMissingError,
    UnknownParentError,
    VoxelNotFoundError,
)
from thunderline.voxel.paging import CHUNK, MAX_SCAN, Cursor, VoxelFilter
from thunderline.voxel.schema import Voxel, canonical_json, sealed_json
from thunderline.voxel.tables import (
    INLINE,
    OBJECT,
    voxel_edges,
    voxel_payloads,
    voxel_revisions,
    voxels,
)
from thunderline.voxel.verify import VoxelCheck, check_all, check_voxel, checksum_mismatch

if TYPE_CHECKING:
    from thunderline.search.engine import SearchResult
    from thunderline.voxel.lifecycle import Deletion

_log = logging.getLogger("thunderline.voxel.store")


#: What an id prefix may hold (voxel ids are UUIDs): hex digits and '-', nothing LIKE reads.
_ID_PREFIX = re.compile(r"[0-9a-f-]+")


def dedup_key(source: str, payload_sha256: str) -> str:
    """The idempotency key of a voxel: same source and same bytes give the same key."""
    return hashlib.sha256(names.utf8(f"{source}\n{payload_sha256}")).hexdigest()


@dataclass(frozen=True)
class PutResult:
    """What a write did: the stored voxel and whether this call created it."""

    voxel: Voxel
    created: bool


class VoxelStore:
    """Voxel metadata, lineage and payloads behind one object (thread-safe)."""

    def __init__(
        self,
        settings: Settings,
        objects: ObjectStore | None = None,
        *,
        engine: Engine | None = None,
    ) -> None:
        self.settings = settings
        self.inline_max = settings.inline_payload_max_bytes
        self.engine = engine or make_engine(settings.resolved_database_url, settings.db)
        if objects is None:
            from thunderline.objects.factory import open_object_store

            objects = open_object_store(settings)
        self.objects = objects
        self.revision = migrate(self.engine)
        self._embedder: Any = None  # thunderline.search.embed.Embedder, loaded on first use
        # statements built once; the bulk write's payload and voxel rows go to the driver's
        # executemany (compiled once: no per-row parameter processing), its row count read
        self._insert_payloads = DriverInsert(
            self.engine, insert_ignore(self.engine, voxel_payloads), ("sha256", "size", "data")
        )
        self._insert_voxels = DriverInsert(
            self.engine, insert_ignore(self.engine, voxels), _VOXEL_COLUMNS
        )
        self._select_keys = select(voxels.c.id, voxels.c.dedup_key).where(
            voxels.c.id.in_(bindparam("ids", expanding=True))
        )
        self._insert_edges = insert_ignore(self.engine, voxel_edges)
        # the verified read's one query, compiled once and run on a pooled driver cursor
        self._location_and_inline = DriverQuery(self.engine, _LOCATION_AND_INLINE, "voxel read")
        self._embedder_lock = threading.Lock()

    @property
    def url(self) -> str:
        """The database URL with the password masked (safe to log or show)."""
        return self.engine.url.render_as_string(hide_password=True)

    def ping(self) -> None:
        """Round-trip to the database (``select 1``); BackendError when it is down."""
        self._query(select(literal(1)))

    def close(self) -> None:
        """Release the connection pool (and the sentence embedder, if loaded)."""
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
        self.engine.dispose()

    def embedder(self) -> Any:
        """The sentence embedder (:class:`thunderline.search.embed.Embedder`), loaded once."""
        with self._embedder_lock:
            if self._embedder is None:
                from thunderline.search.embed import Embedder

                self._embedder = Embedder.from_settings(self.settings)
            return self._embedder

    def __enter__(self) -> VoxelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writes -----------------------------------------------------------------------------
    def put(self, voxel: Voxel, payload: bytes | None = None) -> PutResult:
        """Store ``voxel`` (and its payload) or return the existing voxel with its key."""
        return self.put_many([(voxel, payload)])[0]

    def put_many(self, items: Sequence[tuple[Voxel, bytes | None]]) -> list[PutResult]:
        """Store several voxels in one transaction (all or none); see :meth:`put`.

        ``payload`` is required when the voxel's payload is below the inline limit and is
        verified against the voxel's payload SHA-256 before it is written; larger payloads
        must already be in the object store. The same source and bytes twice in one batch
        give one row (the first wins; the second result is ``created=False``).

        Raises:
            InvalidVoxelError: a metadata checksum or payload size does not match.
            ChecksumMismatch: a payload does not hash to its voxel's SHA-256.
            PayloadMissingError: a large payload is not in the object store.
            UnknownParentError, LineageCycleError: the batch's lineage is not a DAG over
                existing voxels.
            BackendError: the database failed.
        """
        prepared = [self._prepare(voxel, payload) for voxel, payload in items]
        if not prepared:
            return []
        index = search_docs_for(  # the search index rows, written in the same transaction
            self.objects, (p.voxel for p in prepared), self.settings.search.max_text_chars
        )
        vectors = (  # TL_SEARCH_EMBED: the text voxels' embeddings, made before it too
            vectors_for(self.objects, self.embedder(), (p.voxel for p in prepared))
            if self.settings.search.embed
            else []
        )
        for exact in (False, True):
            try:
                with backend_errors("voxel write"), self.engine.begin() as conn:
                    results = self._put_batch(conn, prepared, exact=exact)
                    created = {r.voxel.id for r in results if r.created}
                    # created by this transaction: no index row of theirs to replace
                    index_voxels(
                        conn, [doc for doc in index if doc.voxel_id in created], fresh=True
                    )
                    write_vectors(conn, [row for row in vectors if row[0] in created])
                    return results
            except _Ambiguous:  # rolled back: written again, telling old rows from new first
                continue
        raise AssertionError("unreachable: the exact write never raises _Ambiguous")

    def _prepare(self, voxel: Voxel, payload: bytes | None) -> _Prepared:
        doc = _checked_doc(voxel)
        key = dedup_key(voxel.source, voxel.payload_sha256)
        if voxel.payload_size < self.inline_max:
            if payload is None:
                payload = self.objects.get_bytes(voxel.payload_sha256)
            verify(payload, voxel.payload_sha256, what=f"payload of voxel {voxel.id}")
            if len(payload) != voxel.payload_size:
                raise InvalidVoxelError(
                    f"voxel {voxel.id} says {voxel.payload_size} bytes, payload has {len(payload)}"
                )
            return _Prepared(voxel, payload, INLINE, key, doc)
        if not self.objects.exists(voxel.payload_sha256):
            raise PayloadMissingError(
                f"payload {voxel.payload_ref} of voxel {voxel.id} is not in the object store"
            )
        return _Prepared(voxel, None, OBJECT, key, doc)

    def _put_batch(
        self, conn: Connection, batch: list[_Prepared], *, exact: bool
    ) -> list[PutResult]:
        # the same source and bytes twice in the batch: the first is written, the rest follow it
        first: dict[str, _Prepared] = {}
        for entry in batch:
            first.setdefault(entry.key, entry)
        unique = list(first.values())
        payloads = {e.voxel.payload_sha256: e.payload for e in unique if e.payload is not None}
        if payloads:
            self._insert_payloads.run(
                conn,
                [
                    {"sha256": sha, "size": len(data), "data": data}
                    for sha, data in payloads.items()
                ],
            )
        created = self._insert_new(conn, unique, exact=exact)
        existing: dict[str, Voxel] = {}
        lost = [e.key for e in unique if e.key not in created]
        if lost:  # another write of the same source and bytes won (earlier, or concurrently)
            for row in conn.execute(select(voxels).where(voxels.c.dedup_key.in_(lost))).mappings():
                existing[row["dedup_key"]] = self.from_row(row)
            missing = [key for key in lost if key not in existing]
            if missing:  # an id clash with a different voxel: refuse rather than guess
                raise InvalidVoxelError(
                    f"{len(missing)} voxel id(s) already used by other voxels",
                    details={"dedup_keys": missing[:10]},
                )
        fresh = [e.voxel for e in unique if e.key in created]
        self._link_new(conn, fresh)
        results = []
        for entry in batch:
            winner = first[entry.key]
            if entry is winner and entry.key in created:
                results.append(PutResult(entry.voxel, created=True))
            else:
                results.append(PutResult(existing.get(entry.key, winner.voxel), created=False))
        return results

    def _insert_new(self, conn: Connection, unique: list[_Prepared], *, exact: bool) -> set[str]:
        """Insert the voxel rows (``ON CONFLICT DO NOTHING``); the dedup keys this call created.

        A row is ours when it holds our id with our key; a key an earlier or concurrent writer
        won is under its id, and our id on another key is a clash (refused by the caller).
        Fast path (``exact=False``): the insert's row count says it all when every row or no
        row went in; otherwise one ``SELECT`` of our ids tells which, unless a row with our
        id and key was there before (the same voxel sent again beside new ones): then
        :class:`_Ambiguous`, and the caller writes the batch again with ``exact=True``, which
        reads the existing keys first (one more round trip). No ``RETURNING``: SQLAlchemy
        renders it as one statement of rows x columns parameters instead of the driver's
        ``executemany``, 3x slower on PostgreSQL.
        """
        if exact:
            keys = [e.key for e in unique]
            before = set(conn.scalars(select(voxels.c.id).where(voxels.c.dedup_key.in_(keys))))
            unique = [e for e in unique if e.voxel.id not in before]
            if not unique:
                return set()
        written = self._insert_voxels.run(conn, [_row(entry) for entry in unique])
        if not exact and written == len(unique):
            return {e.key for e in unique}  # every row we sent went in: all ours
        if not exact and written == 0:
            return set()
        ours = {e.voxel.id: e.key for e in unique}
        rows = conn.execute(self._select_keys, {"ids": list(ours)})
        pairs = {(row.id, row.dedup_key) for row in rows}
        created = {e.key for e in unique if (e.voxel.id, e.key) in pairs}
        if not exact and (written < 0 or len(created) != written):
            raise _Ambiguous  # a row count the driver did not give counts as ambiguous too
        return created

    def _link_new(self, conn: Connection, fresh: list[Voxel]) -> None:
        """Lineage edges of voxels this transaction created: checked per batch, one insert."""
        edges = [
            (voxel.id, parent)
            for voxel in fresh
            for parent in dict.fromkeys(voxel.lineage.parent_voxel_ids)
        ]
        if not edges:
            return
        new_ids = {voxel.id for voxel in fresh}
        outside = {parent for _, parent in edges if parent not in new_ids}
        found = set(conn.scalars(select(voxels.c.id).where(voxels.c.id.in_(outside))))
        for child, parent in edges:
            if parent not in new_ids and parent not in found:
                missing = sorted(p for c, p in edges if c == child and p not in new_ids | found)
                raise UnknownParentError(
                    f"parent voxel(s) {', '.join(missing)} of {child} do not exist",
                    details={"voxel_id": child, "missing": missing},
                )
        _check_acyclic(edges, new_ids)
        conn.execute(
            self._insert_edges,
            [{"child_id": c, "parent_id": p} for c, p in edges],
        )

    def _link(self, conn: Connection, child: str, parents: Iterable[str]) -> None:
        parents = list(dict.fromkeys(parents))
        if not parents:
            return
        found = set(conn.scalars(select(voxels.c.id).where(voxels.c.id.in_(parents))))
        missing = [p for p in parents if p not in found]
        if missing:
            raise UnknownParentError(
                f"parent voxel(s) {', '.join(missing)} of {child} do not exist",
                details={"voxel_id": child, "missing": missing},
            )
        for parent in parents:
            if parent == child or child in lineage.ancestor_ids(conn, parent):
                raise LineageCycleError(
                    f"linking {child} to parent {parent} would make {child} its own ancestor",
                    details={"voxel_id": child, "parent_id": parent},
                )
        conn.execute(
            insert_ignore(self.engine, voxel_edges),
            [{"child_id": child, "parent_id": p} for p in parents],
        )

    def complete(self, voxel: Voxel, previous: Voxel, *, reason: str) -> int:
        """Replace the sealed document of ``previous`` with ``voxel``; returns the new revision.

        ``voxel`` has the same id, source, payload and parent voxels: a replay completed a
        stage that had failed. The replaced document is kept in ``voxel_revisions`` and the
        search index row is rewritten, in one transaction; ``voxels verify`` then checks the
        new document like any other.

        Raises:
            InvalidVoxelError: ``voxel`` changes the id, source, payload or parent voxels, or
                ``previous`` is no longer the stored document (another writer replaced it).
            VoxelNotFoundError: the voxel is gone.
            BackendError: the database failed.
        """
        doc = _checked_doc(voxel)
        same = (
            voxel.id == previous.id
            and voxel.source == previous.source
            and voxel.payload_sha256 == previous.payload_sha256
            and set(voxel.lineage.parent_voxel_ids) == set(previous.lineage.parent_voxel_ids)
        )
        if not same:
            raise InvalidVoxelError(
                f"voxel {previous.id}: a completion keeps the id, source, payload and parents"
            )
        index = search_docs_for(self.objects, [voxel], self.settings.search.max_text_chars)
        with backend_errors("voxel write"), self.engine.begin() as conn:
            row = conn.execute(select(voxels).where(voxels.c.id == voxel.id)).mappings().first()
            if row is None:
                raise VoxelNotFoundError(f"no voxel {voxel.id}")
            if row["metadata_sha256"] != previous.checksums.metadata_sha256:
                raise InvalidVoxelError(
                    f"voxel {voxel.id} changed since it was read: completion refused"
                )
            before = int(
                conn.scalar(
                    select(func.count())
                    .select_from(voxel_revisions)
                    .where(voxel_revisions.c.voxel_id == voxel.id)
                )
                or 0
            )
            conn.execute(
                voxel_revisions.insert().values(
                    id=str(uuid7()),
                    voxel_id=voxel.id,
                    revision=before + 1,
                    metadata_sha256=row["metadata_sha256"],
                    doc=row["doc"],
                    replaced_by_event=voxel.event_id,
                    reason=reason,
                    replaced_unix=time.time(),
                )
            )
            done = conn.execute(
                update(voxels)
                .where(
                    voxels.c.id == voxel.id,
                    voxels.c.metadata_sha256 == previous.checksums.metadata_sha256,
                )
                .values(
                    event_id=voxel.event_id,
                    correlation_id=voxel.correlation_id,
                    causation_id=voxel.causation_id,
                    label=voxel.label,
                    ts_unix=voxel.ts.timestamp(),
                    metadata_sha256=voxel.checksums.metadata_sha256,
                    schema_version=voxel.schema_version,
                    doc=doc,
                )
            )
            if done.rowcount != 1:
                raise InvalidVoxelError(
                    f"voxel {voxel.id} changed since it was read: completion refused"
                )
            index_voxels(conn, index)
        return before + 2

    def revisions(self, voxel_id: str) -> list[dict[str, Any]]:
        """The documents completions replaced, oldest first (empty if never completed).

        Each is a dict: ``revision``, ``voxel`` (the replaced document, verified against its
        recorded SHA-256), ``replaced_by_event``, ``reason`` and ``replaced_unix`` (when).

        Raises:
            ChecksumMismatch: a replaced document does not hash to its recorded SHA-256.
        """
        stmt = (
            select(voxel_revisions)
            .where(voxel_revisions.c.voxel_id == voxel_id)
            .order_by(voxel_revisions.c.revision)
        )
        out = []
        for row in self._query(stmt):
            voxel = Voxel.model_validate(json.loads(row["doc"]))
            if voxel.compute_metadata_sha256() != row["metadata_sha256"]:
                raise checksum_mismatch(
                    f"revision {row['revision']} of voxel {voxel_id}",
                    row["metadata_sha256"],
                    voxel.compute_metadata_sha256(),
                )
            out.append(
                {
                    "revision": int(row["revision"]),
                    "voxel": voxel,
                    "replaced_by_event": row["replaced_by_event"],
                    "reason": row["reason"],
                    "replaced_unix": float(row["replaced_unix"]),
                }
            )
        return out

    def add_parents(self, voxel_id: str, parent_ids: Iterable[str]) -> None:
        """Add lineage edges to an existing voxel; refuses any edge that would make a cycle.

        The voxel's sealed document does not name these parents, so :meth:`verify` reports
        each added edge (``lineage_mismatch``): lineage is sealed at packaging time.
        """
        with backend_errors("lineage write"), self.engine.begin() as conn:
            if conn.scalar(select(voxels.c.id).where(voxels.c.id == voxel_id)) is None:
                raise VoxelNotFoundError(f"no voxel {voxel_id}")
            self._link(conn, voxel_id, parent_ids)

    # ---- reads ------------------------------------------------------------------------------
    def from_row(self, row: RowMapping) -> Voxel:
        """The voxel of a row, its document checked against the recorded metadata SHA-256."""
        what = f"metadata of voxel {row['id']}"
        try:
            # json.loads, not pydantic's parser: that refuses the \uXXXX escape of a lone
            # surrogate, which is how an undecodable byte of a name travels (names.py)
            voxel = Voxel.model_validate(json.loads(row["doc"]))
        except (ValidationError, ValueError) as exc:
            raise checksum_mismatch(what, row["metadata_sha256"], "unparseable") from exc
        actual = voxel.compute_metadata_sha256()
        if actual != row["metadata_sha256"] or voxel.checksums.metadata_sha256 != actual:
            raise checksum_mismatch(what, row["metadata_sha256"], actual)
        if voxel.id != row["id"] or voxel.payload_sha256 != row["payload_sha256"]:
            raise checksum_mismatch(what, row["payload_sha256"], voxel.payload_sha256)
        return voxel

    def _query(self, stmt: Any) -> list[Any]:
        with backend_errors("voxel read"), self.engine.connect() as conn:
            return list(conn.execute(stmt).mappings())

    def row(self, voxel_id: str) -> RowMapping | None:
        """The database row of a voxel (its document and index columns), if any."""
        rows = self._query(select(voxels).where(voxels.c.id == voxel_id))
        return rows[0] if rows else None

    def page(
        self, flt: VoxelFilter, cursor: str | None = None, *, limit: int = 50
    ) -> tuple[list[Voxel], str | None]:
        """One page of voxels (newest first) and the next page's cursor (None at the end).

        Raises:
            BadCursorError: ``cursor`` is not one a page returned.
        """
        last = Cursor.decode(cursor) if cursor else None
        found: list[Voxel] = []
        scanned = 0
        while len(found) < limit and scanned < MAX_SCAN:
            rows = self._query(flt.statement(last))
            consumed = 0
            for row in rows:
                consumed += 1
                scanned += 1
                last = Cursor(float(row["ts_unix"]), str(row["id"]))
                voxel = self.from_row(row)  # metadata checksum verified
                if flt.matches(voxel):
                    found.append(voxel)
                    if len(found) >= limit:
                        break
            if len(rows) < CHUNK and consumed == len(rows):
                return found, None  # every row was scanned: the end
        return found, None if last is None else last.encode()

    def resolve_id(self, id_or_prefix: str) -> str:
        """A full voxel id from an id, a short id (its random tail) or a unique prefix.

        The reference forms are those :mod:`thunderline.ids` parses.

        Raises:
            AmbiguousIdError: the reference matches more than one voxel.
            InvalidVoxelIdError: it holds other characters than hex digits and ``-``.
            VoxelNotFoundError: no voxel matches it, or it is no reference
                :mod:`thunderline.ids` can parse.
        """
        text = id_or_prefix.strip().lower()
        if len(text) >= ids.MIN_REF and not _ID_PREFIX.fullmatch(text):
            raise InvalidVoxelIdError(
                f"voxel id {names.shown(id_or_prefix)!r}: an id holds only hex digits and '-'"
            )
        try:
            ref = ids.parse_ref(id_or_prefix, what="voxel id")
        except ids.IdReferenceError as exc:
            raise VoxelNotFoundError(str(exc)) from exc
        stmt = select(voxels.c.id).where(ids.id_condition(voxels.c.id, ref)).limit(5)
        found = ids.pick(ref, [str(r["id"]) for r in self._query(stmt)], what="voxel id")
        if found is None:
            raise VoxelNotFoundError(f"no voxel {id_or_prefix}")
        return found

    def get(self, voxel_id: str) -> Voxel:
        """The voxel with this id (or unique prefix), its metadata verified."""
        full = self.resolve_id(voxel_id)
        row = self.row(full)
        if row is None:
            raise VoxelNotFoundError(f"no voxel {voxel_id}")
        return self.from_row(row)

    def find_by_event(self, event_id: str) -> Voxel | None:
        """The voxel packaged from the event ``event_id``, if any."""
        rows = self._query(select(voxels).where(voxels.c.event_id == event_id).limit(1))
        return self.from_row(rows[0]) if rows else None

    def find(self, source: str, payload_sha256: str) -> Voxel | None:
        """The voxel of these bytes from this source, if any."""
        key = dedup_key(source, payload_sha256)
        rows = self._query(select(voxels).where(voxels.c.dedup_key == key))
        return self.from_row(rows[0]) if rows else None

    def holders(self, payload_sha256s: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        """For each SHA-256, the (source, voxel id) of every voxel holding those bytes.

        The holders come oldest first, all in one query for a batch: the duplicate policy's
        question. A SHA-256 no voxel holds has no key.
        """
        shas = sorted(set(payload_sha256s))
        out: dict[str, list[tuple[str, str]]] = {}
        if not shas:
            return out
        stmt = (
            select(voxels.c.payload_sha256, voxels.c.source, voxels.c.id)
            .where(voxels.c.payload_sha256.in_(shas))
            .order_by(voxels.c.ts_unix, voxels.c.id)
        )
        for row in self._query(stmt):
            out.setdefault(row["payload_sha256"], []).append((row["source"], row["id"]))
        return out

    def query(
        self, *, label: str | None = None, since: datetime | None = None, limit: int = 50
    ) -> list[Voxel]:
        """Newest voxels first, optionally of one Magika label and/or since a time."""
        return self.page(VoxelFilter(label=label, since=since), limit=limit)[0]

    def count(self) -> int:
        """How many voxels the store holds."""
        rows = self._query(select(func.count().label("n")).select_from(voxels))
        return int(rows[0]["n"])

    def iter_ids(self, batch: int = 500) -> Iterator[str]:
        """Every voxel id, oldest first, read in pages."""
        last = ""
        while True:
            stmt = select(voxels.c.id).where(voxels.c.id > last).order_by(voxels.c.id).limit(batch)
            ids = [str(r["id"]) for r in self._query(stmt)]
            yield from ids
            if len(ids) < batch:
                return
            last = ids[-1]

    def parents(self, voxel_id: str) -> list[str]:
        """The ids of the voxel's direct parent voxels, sorted (empty for a root)."""
        stmt = select(voxel_edges.c.parent_id).where(voxel_edges.c.child_id == voxel_id)
        return sorted(str(r["parent_id"]) for r in self._query(stmt))

    def ancestors(self, voxel_id: str) -> list[lineage.Edge]:
        """Every lineage edge above the voxel (one recursive query)."""
        with self.engine.connect() as conn:
            return lineage.ancestors(conn, voxel_id)

    def descendants(self, voxel_id: str) -> list[lineage.Edge]:
        """Every lineage edge below the voxel (one recursive query)."""
        with self.engine.connect() as conn:
            return lineage.descendants(conn, voxel_id)

    def ancestor_ids(self, voxel_id: str) -> set[str]:
        """The ids of every voxel above this one in the lineage (parents, their parents...)."""
        return {edge.parent_id for edge in self.ancestors(voxel_id)}

    # ---- payloads ---------------------------------------------------------------------------
    def inline_copy(self, sha: str) -> bytes | None:
        """The inline payload row of this SHA-256, unverified (None: no inline copy)."""
        rows = self._query(select(voxel_payloads.c.data).where(voxel_payloads.c.sha256 == sha))
        return bytes(rows[0]["data"]) if rows else None

    def _stored(self, voxel: Voxel) -> bytes | None:
        """The voxel's inline payload bytes, unverified; None when it is in the object store.

        One query reads the voxel's payload location and its inline row together (on a
        pooled driver cursor: :class:`~thunderline.voxel.db.DriverQuery`).
        """
        row = self._location_and_inline.first({"id": voxel.id, "sha": voxel.payload_sha256})
        if row is None:
            raise VoxelNotFoundError(f"no voxel {voxel.id}")
        if row[0] != INLINE:
            return None
        if row[1] is None:
            raise PayloadMissingError(f"inline payload of voxel {voxel.id} is missing")
        return bytes(row[1])

    def read_raw(self, voxel: Voxel) -> bytes:
        """The stored payload bytes WITHOUT verification (benchmarks and ``verify`` only)."""
        data = self._stored(voxel)
        if data is not None:
            return data
        path = self.objects.local_path(voxel.payload_sha256)
        if path is not None:
            return path.read_bytes()
        return self.objects.get_bytes(voxel.payload_sha256)

    def read_payload(self, voxel: Voxel | str) -> bytes:
        """The payload bytes, re-hashed and compared with the voxel's SHA-256 first.

        Inline bytes come with the voxel's payload location in one query.
        """
        if isinstance(voxel, str):
            voxel = self.get(voxel)
        data = self._stored(voxel)
        if data is not None:
            return _verified(voxel, data)
        try:
            return self.objects.get_bytes(voxel.payload_sha256)
        except PayloadNotFound as exc:
            raise PayloadMissingError(f"payload {voxel.payload_ref} is missing") from exc

    def copy_payload(self, voxel: Voxel | str, dest: BinaryIO) -> int:
        """Write the verified payload to ``dest``; returns the size.

        Large payloads are spooled and hashed first, so nothing is written to ``dest`` unless
        every byte matched.
        """
        if isinstance(voxel, str):
            voxel = self.get(voxel)
        data = self._stored(voxel)
        if data is not None:
            dest.write(_verified(voxel, data))
            return len(data)
        try:
            return self.objects.copy_verified(voxel.payload_sha256, dest)
        except PayloadNotFound as exc:
            raise PayloadMissingError(f"payload {voxel.payload_ref} is missing") from exc

    def verify(self, voxel_id: str) -> VoxelCheck:
        """Check one voxel against its sealed document (:mod:`.verify`; never raises)."""
        return check_voxel(self, voxel_id)

    def verify_all(self) -> Iterator[VoxelCheck]:
        """Check every voxel, oldest first."""
        return check_all(self)

    def search(
        self,
        query: str,
        *,
        order: Literal["relevance", "time"] = "relevance",
        limit: int = 20,
        cursor: str | None = None,
        facets: bool = False,
    ) -> SearchResult:
        """One page of search hits for ``query`` (:class:`thunderline.search.engine.Searcher`).

        Raises:
            QuerySyntaxError: the query is malformed.
        """
        from thunderline.search.engine import Searcher

        return Searcher(self.engine).search(
            query, order=order, limit=limit, cursor=cursor, facets=facets
        )

    def similar(
        self,
        voxel_id: str,
        query: str = "",
        *,
        limit: int = 20,
        cursor: str | None = None,
        embed_missing: bool = False,
    ) -> SearchResult:
        """The voxels most like ``voxel_id`` by sentence embedding, filtered by ``query``.

        See :func:`thunderline.search.similar.similar`. ``embed_missing``: a voxel without a
        stored vector is embedded now (loads the model), else it is a ``NoEmbeddingError``.

        Raises:
            QuerySyntaxError: the filter is malformed.
            NoEmbeddingError: the voxel has no vector (and no text, or ``embed_missing`` off).
        """
        from thunderline.search.similar import NoEmbeddingError, similar

        try:
            return similar(self, voxel_id, query, limit=limit, cursor=cursor)
        except NoEmbeddingError as exc:
            if not embed_missing or not exc.details.get("has_text"):
                raise
        from thunderline.search.embed import Embedder

        with Embedder.from_settings(self.settings) as embedder:
            return similar(self, voxel_id, query, limit=limit, cursor=cursor, embedder=embedder)

    def export_rows(self, query: str = "", *, with_text: bool = False) -> Iterator[dict[str, Any]]:
        """Every voxel matching ``query`` as an export row, verified.

        The rows come from :func:`thunderline.search.export.iter_rows`, page by page.
        """
        from thunderline.search.export import iter_rows

        return iter_rows(self, query, with_text=with_text)

    def delete(
        self,
        voxel_ids: Sequence[str],
        *,
        actor: str,
        reason: str,
        with_descendants: bool = False,
    ) -> list[Deletion]:
        """Delete voxels with an audit record each, then collect their payloads.

        See :func:`thunderline.voxel.lifecycle.delete_voxels`.
        """
        from thunderline.voxel.lifecycle import delete_voxels

        return delete_voxels(
            self, voxel_ids, actor=actor, reason=reason, with_descendants=with_descendants
        )

    def read_text(self, voxel: Voxel | str) -> str | None:
        """The text the extract stage stored for the voxel, SHA-256 verified.

        None when the voxel has no extracted text.

        Raises:
            PayloadMissingError: the text object is gone.
            ChecksumMismatch: it does not hash to the sealed reference.
        """
        if isinstance(voxel, str):
            voxel = self.get(voxel)
        sha = text_sha256(voxel)
        if sha is None:
            return None
        try:
            data = self.objects.get_bytes(sha)
        except PayloadNotFound as exc:
            raise PayloadMissingError(f"extracted text of voxel {voxel.id} is missing") from exc
        return data.decode("utf-8", "replace")


#: A voxel's payload location and its inline bytes (NULL when there is no inline row), by
#: voxel id and payload SHA-256: one round trip for a verified read.
_LOCATION_AND_INLINE = (
    select(voxels.c.payload_location, voxel_payloads.c.data)
    .select_from(voxels.outerjoin(voxel_payloads, voxel_payloads.c.sha256 == bindparam("sha")))
    .where(voxels.c.id == bindparam("id"))
)


class _Ambiguous(Exception):
    """A batch mixed new voxels with ones already stored under the same ids (rolled back)."""


def _verified(voxel: Voxel, data: bytes) -> bytes:
    """``data`` if it hashes to the voxel's payload SHA-256, else ChecksumMismatch."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != voxel.payload_sha256:
        raise checksum_mismatch(f"payload of voxel {voxel.id}", voxel.payload_sha256, actual)
    return data


@dataclass(frozen=True)
class _Prepared:
    """A voxel checked and ready to write: its payload (inline only), location, key, JSON."""

    voxel: Voxel
    payload: bytes | None
    location: str
    key: str
    doc: str


def _checked_doc(voxel: Voxel) -> str:
    """The voxel's canonical JSON, after checking its metadata SHA-256.

    One serialisation does both: the metadata JSON is the document with ``checksums`` holding
    the payload hash only.
    """
    doc = sealed_json(voxel)  # serialised when sealed (the builder's voxels): not again
    if doc is None:
        doc = canonical_json(voxel.model_dump(mode="json"))
    sums = voxel.checksums
    # canonical JSON of the checksums (both validated as 64 lower-case hex digits: no escapes)
    anchor = (
        f'"checksums":{{"metadata_sha256":"{sums.metadata_sha256}",'
        f'"payload_sha256":"{sums.payload_sha256}"}}'
    )
    if doc.count(anchor) == 1:
        meta_json = doc.replace(anchor, f'"checksums":{{"payload_sha256":"{sums.payload_sha256}"}}')
        actual = hashlib.sha256(meta_json.encode("utf-8")).hexdigest()
    else:  # pragma: no cover - the anchor is unique unless a trait copies the checksums
        actual = voxel.compute_metadata_sha256()
    if actual != sums.metadata_sha256:
        raise InvalidVoxelError(f"voxel {voxel.id} metadata checksum does not match")
    return doc


#: The columns :func:`_row` gives, in the table's order.
_VOXEL_COLUMNS = tuple(c.name for c in voxels.columns)


def _row(entry: _Prepared) -> dict[str, Any]:
    voxel = entry.voxel
    return {
        "id": voxel.id,
        "dedup_key": entry.key,
        "event_id": voxel.event_id,
        "correlation_id": voxel.correlation_id,
        "causation_id": voxel.causation_id,
        "source": names.wire_text(voxel.source),
        "ts_unix": voxel.ts.timestamp(),
        "label": voxel.label,
        "payload_sha256": voxel.payload_sha256,
        "payload_size": voxel.payload_size,
        "payload_location": entry.location,
        "metadata_sha256": voxel.checksums.metadata_sha256,
        "schema_version": voxel.schema_version,
        "doc": entry.doc,
    }


def _check_acyclic(edges: Sequence[tuple[str, str]], new_ids: set[str]) -> None:
    """Refuse a batch whose new edges make a cycle (only new voxels can be on one)."""
    parents: dict[str, list[str]] = {}
    for child, parent in edges:
        if parent == child:
            raise LineageCycleError(
                f"linking {child} to parent {parent} would make {child} its own ancestor",
                details={"voxel_id": child, "parent_id": parent},
            )
        if parent in new_ids:
            parents.setdefault(child, []).append(parent)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in parents:
        if state.get(start):
            continue
        stack = [(start, iter(parents.get(start, ())))]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                raise LineageCycleError(
                    f"linking {node} to parent {nxt} would make {node} its own ancestor",
                    details={"voxel_id": node, "parent_id": nxt},
                )
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(parents.get(nxt, ()))))


def text_sha256(voxel: Voxel) -> str | None:
    """The SHA-256 of the voxel's extracted text (``traits.extract.text_ref``), if any."""
    extract = voxel.traits.get("extract")
    ref = extract.get("text_ref") if isinstance(extract, dict) else None
    if not isinstance(ref, str) or not ref.startswith("sha256:") or len(ref) != 71:
        return None
    return ref[7:]


def open_voxel_store(settings: Settings, objects: ObjectStore | None = None) -> VoxelStore:
    """The voxel store the settings select, migrated to the newest revision."""
    return VoxelStore(settings, objects)
