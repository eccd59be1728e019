"""The source ledger: what each entry of a watched folder or bucket prefix was, and how it ended.

One row per *version* of an entry (``source_entries``; migration ``0005_sources``): its identity
(root URI and key below it), size, mtime, content SHA-256, state and outcome. The newest version
of a key is ``current``; a changed file adds version ``n + 1`` whose ``previous_id`` names
version ``n``. States:

* ``submitted`` -- the bytes are in the object store and the ingest event is (being) published;
  the row is committed *before* the event is published, so a restart finds it;
* ``done`` -- its voxel or DLQ record is committed in the outcomes table (``outcome`` says which:
  ``voxel``, ``linked`` (a duplicate pointing at an existing voxel) or ``dlq``);
* ``deleted`` -- the entry disappeared from its source (the delete policy decided about its
  voxels).

Reads for a sync pass are one query per root (key, size, mtime, state) so an unchanged tree is
compared in memory.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import and_, func, insert, select, update

from thunderline.voxel.db import Tables
from thunderline.voxel.tables import source_entries, source_roots

SUBMITTED = "submitted"
DONE = "done"
DELETED = "deleted"


@dataclass(frozen=True)
class Entry:
    """One version of one source entry (a ledger row)."""

    id: str
    root: str
    key: str
    version: int
    current: bool
    size: int
    mtime_ns: int
    etag: str | None
    content_sha256: str | None
    state: str
    outcome: str | None
    duplicate_of: str | None
    voxel_id: str | None
    correlation_id: str | None
    dlq_id: str | None
    previous_id: str | None
    seen_unix: float
    updated_unix: float

    def to_json_dict(self) -> dict[str, Any]:
        """Every field by name, as JSON-ready values."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Root:
    """A source root the ledger knows (a folder or bucket prefix URI): paused, and its last pass.

    ``last_summary`` is the last pass's report as a dict, None before the first pass.
    """

    uri: str
    paused: bool
    created_unix: float
    last_sync_unix: float | None
    last_summary: dict[str, Any] | None

    def to_json_dict(self) -> dict[str, Any]:
        """Every field by name, as JSON-ready values."""
        return dict(self.__dict__)


class Known(NamedTuple):
    """What a sync pass compares of a current entry (one light tuple per key, one query)."""

    id: str
    size: int
    mtime_ns: int
    etag: str | None
    state: str


#: A current entry as :meth:`Ledger.known` reads it: ``(id, size, mtime_ns, etag, state, key)``.
KnownRow = tuple[Any, ...]


class Prior(NamedTuple):
    """The rest of a current entry, read only for the entries a pass acts on."""

    id: str
    version: int
    state: str
    content_sha256: str | None
    correlation_id: str | None


def _entry(row: Any) -> Entry:
    return Entry(**{name: row[name] for name in Entry.__dataclass_fields__})


class Ledger(Tables):
    """The ``source_roots`` and ``source_entries`` tables (thread-safe; one engine)."""

    what = "source ledger"

    def __enter__(self) -> Ledger:
        return self

    # ---- roots --------------------------------------------------------------------------------
    def ensure_root(self, uri: str) -> Root:
        """The root ``uri``, added (not paused, never synced) when the ledger does not know it."""

        def run(conn: Any) -> Root:
            row = conn.execute(select(source_roots).where(source_roots.c.uri == uri)).mappings()
            found = row.first()
            if found is None:
                now = time.time()
                conn.execute(insert(source_roots).values(uri=uri, paused=False, created_unix=now))
                return Root(uri, False, now, None, None)
            return _root(found)

        result: Root = self._run("root", run)
        return result

    def roots(self) -> list[Root]:
        """Every source root, by URI."""

        def run(conn: Any) -> list[Root]:
            rows = conn.execute(select(source_roots).order_by(source_roots.c.uri)).mappings()
            return [_root(r) for r in rows]

        result: list[Root] = self._run("read", run)
        return result

    def set_paused(self, uri: str, paused: bool) -> bool:
        """Pause or resume a root; False when the root is unknown."""

        def run(conn: Any) -> bool:
            stmt = update(source_roots).where(source_roots.c.uri == uri).values(paused=paused)
            return bool(conn.execute(stmt).rowcount)

        result: bool = self._run("pause", run)
        return result

    def finish_pass(self, uri: str, summary: dict[str, Any]) -> None:
        """Record a finished pass over root ``uri``: the time now and the pass's ``summary``."""
        self._run(
            "pass",
            lambda conn: conn.execute(
                update(source_roots)
                .where(source_roots.c.uri == uri)
                .values(last_sync_unix=time.time(), last_summary=json.dumps(summary))
            ),
        )

    # ---- entries ------------------------------------------------------------------------------
    def known(self, root: str) -> dict[str, KnownRow]:
        """Every current entry of ``root`` by key (one query), as the driver's own row tuples.

        The tuples are ``(id, size, mtime_ns, etag, state, key)``: positions 0-4 are
        :class:`Known`'s fields, ``Known(*row[:5])`` when a named one is wanted. No object per
        row: 100k rows in a fraction of a second.
        """
        c = source_entries.c
        stmt = select(c.id, c.size, c.mtime_ns, c.etag, c.state, c.key).where(
            and_(c.root == root, c.current.is_(True))
        )

        def run(conn: Any) -> dict[str, KnownRow]:
            compiled = stmt.compile(dialect=conn.dialect)
            params: Any = compiled.construct_params()
            if compiled.positiontup is not None:
                params = tuple(params[name] for name in compiled.positiontup)
            cursor = conn.exec_driver_sql(str(compiled), params).cursor
            return {row[5]: row for row in cursor.fetchall()}

        result: dict[str, KnownRow] = self._run("read", run)
        return result

    def priors(self, entry_ids: Sequence[str]) -> dict[str, Prior]:
        """Version, state, content hash and correlation id of these entries, by id."""
        c = source_entries.c
        ids = list(entry_ids)

        def run(conn: Any) -> dict[str, Prior]:
            out: dict[str, Prior] = {}
            for start in range(0, len(ids), 500):
                stmt = select(c.id, c.version, c.state, c.content_sha256, c.correlation_id)
                for row in conn.execute(stmt.where(c.id.in_(ids[start : start + 500]))):
                    out[row[0]] = Prior._make(row)
            return out

        result: dict[str, Prior] = self._run("read", run)
        return result

    def add_versions(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        """Insert new current versions (state ``submitted``) and retire the versions they replace.

        One transaction, committed before their events are published.
        """
        if not rows:
            return []
        now = time.time()
        full = [
            {
                "id": str(uuid.uuid4()),
                "current": True,
                "state": SUBMITTED,
                "outcome": None,
                "duplicate_of": None,
                "voxel_id": None,
                "dlq_id": None,
                "etag": None,
                "previous_id": None,
                "seen_unix": now,
                "updated_unix": now,
                **row,
            }
            for row in rows
        ]
        previous = [r["previous_id"] for r in full if r["previous_id"]]

        def run(conn: Any) -> None:
            if previous:
                conn.execute(
                    update(source_entries)
                    .where(source_entries.c.id.in_(previous))
                    .values(current=False, updated_unix=now)
                )
            conn.execute(insert(source_entries), full)

        self._run("write", run)
        return [row["id"] for row in full]

    def touch(self, updates: Iterable[tuple[str, int, int, str | None]]) -> None:
        """Same bytes, new size/mtime (a ``touch``): update the stat, no new version."""
        todo = list(updates)
        if not todo:
            return
        now = time.time()

        def run(conn: Any) -> None:
            for entry_id, size, mtime_ns, etag in todo:
                conn.execute(
                    update(source_entries)
                    .where(source_entries.c.id == entry_id)
                    .values(size=size, mtime_ns=mtime_ns, etag=etag, updated_unix=now)
                )

        self._run("write", run)

    def resend(self, entry_id: str, correlation_id: str, seen: Any, sha: str | None) -> None:
        """A resumed entry sent again: its new correlation id and what was read this time."""
        self._run(
            "write",
            lambda conn: conn.execute(
                update(source_entries)
                .where(source_entries.c.id == entry_id)
                .values(
                    correlation_id=correlation_id,
                    size=seen.size,
                    mtime_ns=seen.mtime_ns,
                    etag=seen.etag,
                    content_sha256=sha,
                    updated_unix=time.time(),
                )
            ),
        )

    def settle(self, done: Iterable[dict[str, Any]]) -> None:
        """Mark entries ``done`` with their outcome.

        Each outcome names ``id``, ``outcome``, ``voxel_id``, ``dlq_id``, ``duplicate_of`` and
        ``content_sha256``.
        """
        todo = list(done)
        if not todo:
            return
        now = time.time()

        def run(conn: Any) -> None:
            for item in todo:
                values = {k: v for k, v in item.items() if k != "id"}
                conn.execute(
                    update(source_entries)
                    .where(source_entries.c.id == item["id"])
                    .values(state=DONE, updated_unix=now, **values)
                )

        self._run("write", run)

    def mark_deleted(self, entry_ids: Sequence[str]) -> None:
        """Mark the entries ``deleted`` (gone from their source); the rows are kept."""
        if not entry_ids:
            return
        now = time.time()
        self._run(
            "write",
            lambda conn: conn.execute(
                update(source_entries)
                .where(source_entries.c.id.in_(list(entry_ids)))
                .values(state=DELETED, updated_unix=now)
            ),
        )

    def entries(
        self,
        root: str | None = None,
        *,
        key: str | None = None,
        state: str | None = None,
        current_only: bool = True,
        limit: int = 1000,
    ) -> list[Entry]:
        """Entries by root, key and version, at most ``limit``, filtered by the given fields.

        Args:
            root: Only this root's entries.
            key: Only the versions of this key.
            state: Only entries in this state (``submitted``, ``done``, ``deleted``...).
            current_only: Only current versions (False: retired versions too).
            limit: The most entries returned.
        """
        c = source_entries.c
        stmt = select(source_entries).order_by(c.root, c.key, c.version).limit(limit)
        if root is not None:
            stmt = stmt.where(c.root == root)
        if key is not None:
            stmt = stmt.where(c.key == key)
        if state is not None:
            stmt = stmt.where(c.state == state)
        if current_only:
            stmt = stmt.where(c.current.is_(True))

        def run(conn: Any) -> list[Entry]:
            return [_entry(r) for r in conn.execute(stmt).mappings()]

        result: list[Entry] = self._run("read", run)
        return result

    def get(self, entry_id: str) -> Entry | None:
        """The entry version with this id, or None."""

        def run(conn: Any) -> Entry | None:
            row = conn.execute(
                select(source_entries).where(source_entries.c.id == entry_id)
            ).mappings()
            found = row.first()
            return _entry(found) if found is not None else None

        result: Entry | None = self._run("read", run)
        return result

    def counts(self, root: str) -> dict[str, int]:
        """How many current entries of ``root`` are in each state (states with none left out)."""
        c = source_entries.c
        stmt = (
            select(c.state, func.count())
            .where(and_(c.root == root, c.current.is_(True)))
            .group_by(c.state)
        )

        def run(conn: Any) -> dict[str, int]:
            return {str(state): int(n) for state, n in conn.execute(stmt)}

        result: dict[str, int] = self._run("read", run)
        return result

    def referencing(self, voxel_ids: Sequence[str]) -> list[Entry]:
        """Ledger rows that name one of these voxels (their outcome or duplicate)."""
        c = source_entries.c

        def run(conn: Any) -> list[Entry]:
            stmt = select(source_entries).where(c.voxel_id.in_(list(voxel_ids)))
            return [_entry(r) for r in conn.execute(stmt).mappings()]

        result: list[Entry] = self._run("read", run)
        return result


def _root(row: Any) -> Root:
    summary = row["last_summary"]
    return Root(
        uri=row["uri"],
        paused=bool(row["paused"]),
        created_unix=float(row["created_unix"]),
        last_sync_unix=row["last_sync_unix"],
        last_summary=json.loads(summary) if summary else None,
    )
