"""The index's lifecycle: rebuild it over an existing store, check it, take voxels out of it.

Each voxel is indexed as its current result versions describe it (a reprocessed stage's
current version in place of the sealed result: :func:`~thunderline.voxel.results.current_view`).

* :func:`rebuild` walks every voxel in id order, a batch per transaction, and (re)writes the
  rows that are missing or say something else than the voxel (``content_sha256``). Stopping
  it at any point loses nothing: a batch is all or none, and the next run skips every voxel
  whose row is already current -- that is what makes it resumable.
* :func:`check` is what ``voxels verify --all`` adds: ``missing`` / ``stale`` per voxel.
* :func:`remove` takes voxels out (the sources ledger calls it when it deletes a voxel).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from thunderline.errors import BackendError
from thunderline.search.hook import docs_for
from thunderline.search.index import index_voxels, indexed_hashes, remove_voxels
from thunderline.voxel.schema import Voxel
from thunderline.voxel.store import VoxelStore
from thunderline.voxel.tables import voxels as voxels_table


@dataclass
class RebuildReport:
    """What :func:`rebuild` did, in voxels.

    ``seen`` were walked, ``written`` got a new or rewritten index row, ``current`` already
    had a row matching their content (skipped), ``failed`` could not be read (corrupt voxels:
    reported, not indexed).
    """

    seen: int = 0
    written: int = 0
    current: int = 0
    failed: int = 0


@dataclass(frozen=True)
class IndexProblem:
    """A voxel the index is wrong about, as :func:`check` reports it.

    ``reason`` is ``index_missing`` (no row) or ``index_stale`` (the row was made from other
    content); ``detail`` says it in words (for a stale row, both content hashes, shortened).
    """

    voxel_id: str
    reason: str  # index_missing | index_stale
    detail: str


def _batches(store: VoxelStore, size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for voxel_id in store.iter_ids(batch=size):
        batch.append(voxel_id)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _load(store: VoxelStore, ids: list[str]) -> list[tuple[str, object]]:
    """(id, Voxel or the error reading it) for each id."""
    out: list[tuple[str, object]] = []
    with store.engine.connect() as conn:
        rows = {
            str(r["id"]): r
            for r in conn.execute(select(voxels_table).where(voxels_table.c.id.in_(ids))).mappings()
        }
    for voxel_id in ids:
        try:
            out.append((voxel_id, store.from_row(rows[voxel_id])))
        except Exception as exc:  # a corrupt voxel is reported, not indexed
            out.append((voxel_id, exc))
    return out


def _current(store: VoxelStore, voxels: list[object]) -> list[Voxel]:
    """The voxels as their current result versions describe them (what the index holds)."""
    from thunderline.voxel.results import ResultVersions

    return ResultVersions(engine=store.engine).views(voxels)  # type: ignore[arg-type]


def rebuild(
    store: VoxelStore,
    *,
    force: bool = False,
    batch: int = 200,
    progress: Callable[[int], None] | None = None,
) -> RebuildReport:
    """Index every voxel whose row is missing or stale (``force``: every voxel)."""
    report = RebuildReport()
    max_chars = store.settings.search.max_text_chars
    for ids in _batches(store, batch):
        loaded = _load(store, ids)
        good = [v for _, v in loaded if not isinstance(v, Exception)]
        report.failed += len(loaded) - len(good)
        docs = docs_for(store.objects, _current(store, good), max_chars)
        try:
            with store.engine.begin() as conn:
                have = {} if force else indexed_hashes(conn, [d.voxel_id for d in docs])
                todo = [d for d in docs if have.get(d.voxel_id) != d.content_sha256]
                index_voxels(conn, todo)
        except SQLAlchemyError as exc:
            raise BackendError(f"index rebuild failed: {exc}") from exc
        report.seen += len(ids)
        report.written += len(todo)
        report.current += len(docs) - len(todo)
        if progress is not None:
            progress(len(ids))
    return report


def check(store: VoxelStore, voxel_ids: Iterable[str], batch: int = 200) -> list[IndexProblem]:
    """Voxels missing from the index or indexed with content they no longer have."""
    problems: list[IndexProblem] = []
    max_chars = store.settings.search.max_text_chars
    ids = list(voxel_ids)
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        good = [v for _, v in _load(store, chunk) if not isinstance(v, Exception)]
        docs = docs_for(store.objects, _current(store, good), max_chars)
        try:
            with store.engine.connect() as conn:
                have = indexed_hashes(conn, [d.voxel_id for d in docs])
        except SQLAlchemyError as exc:
            raise BackendError(f"index check failed: {exc}") from exc
        for doc in docs:
            found = have.get(doc.voxel_id)
            if found is None:
                problems.append(IndexProblem(doc.voxel_id, "index_missing", "not in the index"))
            elif found != doc.content_sha256:
                problems.append(
                    IndexProblem(
                        doc.voxel_id,
                        "index_stale",
                        f"indexed content {found[:12]}..., voxel says {doc.content_sha256[:12]}...",
                    )
                )
    return problems


def remove(store: VoxelStore, voxel_ids: Iterable[str]) -> int:
    """Take voxels out of the search index (own transaction); how many were in it."""
    try:
        with store.engine.begin() as conn:
            return remove_voxels(conn, voxel_ids)
    except SQLAlchemyError as exc:
        raise BackendError(f"index removal failed: {exc}") from exc
