"""Similar documents: stored sentence embeddings and an exact cosine search over them.

* **Storage** (migration ``0009_vectors``): ``search_vectors`` keeps one unit float32 vector
  per text voxel with the SHA-256 of the text it was made from. :func:`embed_missing` (``thunderline
  index embed``) embeds every text voxel without a current vector, a batch per transaction,
  so it is resumable like ``index rebuild``; a deleted voxel's row cascades away.
* **Search** (:func:`similar`): the vectors are read once into a process-wide
  :class:`VectorCache` (keyed by the database URL) and brought up to date on each call by
  ``seq`` (one cheap ``max(seq), count(*)`` statement; rows added since are appended, any
  other change reloads). The cosine is a dot product (the vectors are unit length) over the
  whole matrix with NumPy, exact; field filters are the ordinary query compiled by
  :mod:`thunderline.search.engine`, whose matching voxels mask the scores. Paging is by keyset
  on (score, seq) in a cursor bound to the voxel and the filter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from thunderline.errors import BackendError, ThunderlineError
from thunderline.search.embed import DIM, EMBED_CHARS, MODEL_NAME, Embedder
from thunderline.search.engine import (
    MAX_LIMIT,
    Hit,
    SearchResult,
    Segment,
    _plan,
    decode_cursor,
    encode_cursor,
)
from thunderline.search.hook import voxel_text
from thunderline.search.query import Node, parse

if TYPE_CHECKING:
    from thunderline.objects.base import ObjectStore
    from thunderline.voxel.schema import Voxel
    from thunderline.voxel.store import VoxelStore

_SNIPPET_CHARS: Final = 240
#: How often (seconds) the vector cache counts the stored rows to notice deletions.
COUNT_CHECK_S: Final = 30.0


class NoEmbeddingError(ThunderlineError):
    """The voxel has no text to compare (or no vector yet and no model to make one)."""

    reason = "no_embedding"


@dataclass
class EmbedReport:
    """What :func:`embed_missing` did."""

    seen: int = 0
    embedded: int = 0
    current: int = 0
    no_text: int = 0
    failed: int = 0


# ---- storage --------------------------------------------------------------------------------
def vector_bytes(vector: NDArray[np.float32]) -> bytes:
    """A vector as stored (little-endian float32)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def write_vectors(conn: Connection, rows: Iterable[tuple[str, str, NDArray[np.float32]]]) -> int:
    """Store (voxel id, text SHA-256, vector) rows in the caller's transaction (replacing)."""
    items = list(rows)
    if not items:
        return 0
    for start in range(0, len(items), 500):
        chunk = items[start : start + 500]
        marks = ", ".join(f":v{i}" for i in range(len(chunk)))
        conn.execute(
            text(f"DELETE FROM search_vectors WHERE voxel_id IN ({marks})"),
            {f"v{i}": item[0] for i, item in enumerate(chunk)},
        )
    conn.execute(
        text(
            "INSERT INTO search_vectors (voxel_id, model, text_sha256, dim, vec) "
            "VALUES (:voxel_id, :model, :sha, :dim, :vec)"
        ),
        [
            {"voxel_id": v, "model": MODEL_NAME, "sha": sha, "dim": DIM, "vec": vector_bytes(vec)}
            for v, sha, vec in items
        ],
    )
    return len(items)


def vectors_for(
    objects: ObjectStore, embedder: Embedder, voxels: Iterable[Voxel]
) -> list[tuple[str, str, NDArray[np.float32]]]:
    """(voxel id, text SHA-256, vector) for the voxels that have extracted text.

    This is the write path's ``TL_SEARCH_EMBED``: the vectors are computed before the voxel's
    transaction and written inside it.
    """
    from thunderline.voxel.store import text_sha256

    todo = []
    for voxel in voxels:
        sha = text_sha256(voxel)
        body = voxel_text(objects, voxel, EMBED_CHARS) if sha is not None else None
        if sha is not None and body is not None:
            todo.append((voxel.id, sha, body))
    if not todo:
        return []
    vectors = embedder.embed([body for _, _, body in todo])
    return [(vid, sha, vectors[i]) for i, (vid, sha, _) in enumerate(todo)]


def _stored_hashes(conn: Connection, ids: list[str]) -> dict[str, str]:
    marks = ", ".join(f":v{i}" for i in range(len(ids)))
    rows = conn.execute(
        text(f"SELECT voxel_id, text_sha256 FROM search_vectors WHERE voxel_id IN ({marks})"),
        {f"v{i}": v for i, v in enumerate(ids)},
    )
    return {str(r[0]): str(r[1]) for r in rows}


def embed_missing(
    store: VoxelStore,
    embedder: Embedder,
    *,
    force: bool = False,
    batch: int = 64,
    progress: Callable[[int], None] | None = None,
) -> EmbedReport:
    """Embed every text voxel whose vector is missing or was made from another text."""
    from thunderline.search.lifecycle import _batches, _load
    from thunderline.voxel.store import text_sha256

    report = EmbedReport()
    for ids in _batches(store, batch):
        loaded = _load(store, ids)
        report.seen += len(ids)
        good: list[Voxel] = [v for _, v in loaded if not isinstance(v, Exception)]  # type: ignore[misc]
        report.failed += len(loaded) - len(good)
        shas = {v.id: text_sha256(v) for v in good}
        with_text = [v for v in good if shas[v.id] is not None]
        report.no_text += len(good) - len(with_text)
        try:
            with store.engine.connect() as conn:
                have = {} if force else _stored_hashes(conn, [v.id for v in with_text] or [""])
        except SQLAlchemyError as exc:
            raise BackendError(f"reading vectors failed: {exc}") from exc
        todo = [v for v in with_text if have.get(v.id) != shas[v.id]]
        report.current += len(with_text) - len(todo)
        rows = vectors_for(store.objects, embedder, todo)
        report.failed += len(todo) - len(rows)  # text unreadable
        if rows:
            try:
                with store.engine.begin() as conn:
                    write_vectors(conn, rows)
            except SQLAlchemyError as exc:
                raise BackendError(f"writing vectors failed: {exc}") from exc
        report.embedded += len(rows)
        if progress is not None:
            progress(len(ids))
    return report


# ---- the in-process copy ---------------------------------------------------------------------
class VectorCache:
    """Every stored vector of one database as one NumPy matrix, kept up to date by ``seq``."""

    def __init__(self) -> None:
        """An empty cache (filled on the first :meth:`refresh`)."""
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.matrix: NDArray[np.float32] = np.zeros((0, DIM), dtype=np.float32)
        self.ids: list[str] = []
        self.seqs: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.row_of: dict[str, int] = {}
        self.max_seq = 0
        self.counted_at = float("-inf")

    def _append(self, rows: list[Any]) -> None:
        if not rows:
            return
        block = np.frombuffer(b"".join(bytes(r[2]) for r in rows), dtype="<f4").reshape(-1, DIM)
        fresh: list[int] = []
        for i, r in enumerate(rows):
            at = self.row_of.get(str(r[1]))
            if at is None:
                fresh.append(i)
            else:  # a voxel embedded again: its row is replaced in place
                self.matrix[at] = block[i]
                self.seqs[at] = int(r[0])
        if fresh:
            base = len(self.ids)
            self.matrix = np.vstack([self.matrix, block[fresh].astype(np.float32)])
            self.seqs = np.concatenate([self.seqs, np.array([int(rows[i][0]) for i in fresh])])
            for j, i in enumerate(fresh):
                self.ids.append(str(rows[i][1]))
                self.row_of[str(rows[i][1])] = base + j
        self.max_seq = max(self.max_seq, int(rows[-1][0]))

    def refresh(self, conn: Connection) -> None:
        """Bring the in-memory copy of the vectors up to date with ``search_vectors``.

        Rows with a higher ``seq`` are read (new ones appended, re-embedded ones replaced in
        place) on every call -- one indexed ``max(seq)``; whether rows were deleted
        (``count(*)``, a scan) is checked at most every :data:`COUNT_CHECK_S` seconds, and
        then the copy is read again. A deleted voxel's
        vector in between costs nothing but a place in the product: its hit is dropped
        because its index row is gone.
        """
        top = int(
            conn.execute(text("SELECT coalesce(max(seq), 0) FROM search_vectors")).scalar_one()
        )
        now = time.monotonic()
        if top < self.max_seq or now - self.counted_at > COUNT_CHECK_S:
            count = int(conn.execute(text("SELECT count(*) FROM search_vectors")).scalar_one())
            self.counted_at = now
            new = 0
            if top > self.max_seq:
                new = int(
                    conn.execute(
                        text("SELECT count(*) FROM search_vectors WHERE seq > :s"),
                        {"s": self.max_seq},
                    ).scalar_one()
                )
            if top < self.max_seq or count != len(self.ids) + new:
                self._reset()  # rows were deleted: read them all again
        if top == self.max_seq:
            return
        rows = list(
            conn.execute(
                text("SELECT seq, voxel_id, vec FROM search_vectors WHERE seq > :s ORDER BY seq"),
                {"s": self.max_seq},
            )
        )
        self._append(rows)


_CACHES: dict[str, VectorCache] = {}
_CACHES_LOCK = threading.Lock()


def cache_for(engine: Engine) -> VectorCache:
    """The process-wide vector cache of this database."""
    key = engine.url.render_as_string(hide_password=True)
    with _CACHES_LOCK:
        return _CACHES.setdefault(key, VectorCache())


# ---- search --------------------------------------------------------------------------------
def _fingerprint_query(voxel_id: str, query: str) -> str:
    return f"similar:{voxel_id}\n{query}"


def similar(
    store: VoxelStore,
    voxel_id: str,
    query: str = "",
    *,
    limit: int = 20,
    cursor: str | None = None,
    embedder: Embedder | None = None,
) -> SearchResult:
    """The voxels most like ``voxel_id`` (cosine of their embeddings), best first.

    ``query`` filters them like a search query (fields, words); the voxel itself is left out.

    Raises:
        NoEmbeddingError: the voxel has no vector and none can be made (no text, no model).
        QuerySyntaxError: the filter or the cursor is malformed.
        UnknownVoxelError: no such voxel.
        BackendError: the database failed.
    """
    full = store.resolve_id(voxel_id)
    limit = max(1, min(int(limit), MAX_LIMIT))
    tree = parse(query)
    dialect = store.engine.dialect.name
    cache = cache_for(store.engine)
    key_query = _fingerprint_query(full, query)
    after: tuple[float, int] | None = None
    if cursor:
        after = decode_cursor(cursor, key_query, "similar")
    result = SearchResult(query, "relevance", [], None)
    try:  # one pooled connection for the whole call (a checkout is a round trip)
        with store.engine.connect() as conn:
            with cache.lock:
                cache.refresh(conn)
                row = cache.row_of.get(full)
                matrix, seqs, ids = cache.matrix, cache.seqs, cache.ids
                probe = matrix[row] if row is not None else None
            if probe is None:
                probe = _embed_one(store, full, embedder)
            scores = matrix @ probe
            if row is not None:
                scores[row] = -np.inf
            if after is not None:
                key, seq = after
                key32 = np.float32(key)
                later = (scores < key32) | ((scores == key32) & (seqs > seq))
                scores = np.where(later, scores, -np.inf)
            want = limit + 1
            if tree is None:
                order = _best(scores, seqs, want)
            else:
                order = _best_allowed(conn, dialect, tree, scores, seqs, ids, want)
            more = len(order) > limit
            order = order[:limit]
            result.hits = _hits(conn, [(ids[i], float(scores[i])) for i in order])
    except SQLAlchemyError as exc:
        raise BackendError(f"similar search failed: {exc}") from exc
    if more and order:
        last = order[-1]
        result.next_cursor = encode_cursor(
            key_query, "similar", float(scores[last]), int(seqs[last])
        )
    return result


def _best(scores: NDArray[np.float32], seqs: NDArray[np.int64], want: int) -> list[int]:
    """The rows of the ``want`` best finite scores, by (score descending, seq ascending).

    Every row tied with the last one taken is considered, so ties break by ``seq`` exactly.
    """
    finite = int(np.isfinite(scores).sum())
    if finite == 0 or want <= 0:
        return []
    take = min(want, finite)
    if take < len(scores):
        top = np.argpartition(-scores, take - 1)[:take]
        floor = scores[top].min()
        top = np.flatnonzero(scores >= floor)  # with every tie of the last one
    else:
        top = np.arange(len(scores))
    top = top[np.isfinite(scores[top])]
    ranked = top[np.lexsort((seqs[top], -scores[top]))]
    return [int(i) for i in ranked[:want]]


#: A filtered ``similar`` checks the best candidates against the filter in SQL, this many at
#: first and four times more each round, before reading the whole filtered set at once.
CANDIDATES: Final = 256
CANDIDATES_MAX: Final = 16_384


def _best_allowed(
    conn: Connection,
    dialect: str,
    tree: Node,
    scores: NDArray[np.float32],
    seqs: NDArray[np.int64],
    ids: list[str],
    want: int,
) -> list[int]:
    """The ``want`` best rows whose voxel matches the filter ``tree`` (exact).

    Candidates are taken best first and checked against the filter's SQL by voxel id, a
    round at a time (``CANDIDATES``, x4 each round); a filter so narrow that
    ``CANDIDATES_MAX`` candidates do not hold ``want`` matches has its whole match set read
    instead and masks the scores.
    """
    plan = _plan(dialect, tree)
    allowed: list[int] = []
    checked = 0
    size = CANDIDATES
    while size <= CANDIDATES_MAX:
        ranked = _best(scores, seqs, size)
        fresh = ranked[checked:]
        if fresh:
            marks = ", ".join(f":c{i}" for i in range(len(fresh)))
            sql = (
                f"SELECT d.voxel_id FROM {plan.from_} WHERE {plan.where} "
                f"AND d.voxel_id IN ({marks})"
            )
            params = {**plan.params, **{f"c{i}": ids[r] for i, r in enumerate(fresh)}}
            passed = set(conn.execute(text(sql), params).scalars())
            allowed += [r for r in fresh if ids[r] in passed]
            checked = len(ranked)
        if len(allowed) >= want or len(ranked) < size:  # enough, or no more rows
            return allowed[:want]
        size *= 4
    sql = f"SELECT d.voxel_id FROM {plan.from_} WHERE {plan.where}"
    vids = conn.execute(text(sql), plan.params).scalars().all()
    where = _row_lookup(ids)
    rows_ = np.fromiter((where(v, -1) for v in vids), dtype=np.int64, count=len(vids))
    mask = np.zeros(len(ids), dtype=bool)
    mask[rows_[rows_ >= 0]] = True
    return _best(np.where(mask, scores, -np.inf).astype(scores.dtype), seqs, want)


def _row_lookup(ids: list[str]) -> Callable[[str, int], int]:
    row_of = {v: i for i, v in enumerate(ids)}
    return row_of.get


def _embed_one(store: VoxelStore, voxel_id: str, embedder: Embedder | None) -> NDArray[np.float32]:
    """The vector of a voxel that has none stored yet (made now, not stored: reads never write)."""
    voxel = store.get(voxel_id)
    body = voxel_text(store.objects, voxel, EMBED_CHARS)
    if body is None:
        raise NoEmbeddingError(
            f"voxel {voxel_id} has no extracted text to compare",
            details={"voxel_id": voxel_id, "has_text": False},
        )
    if embedder is None:
        raise NoEmbeddingError(
            f"voxel {voxel_id} has no embedding yet: run `thunderline index embed`",
            details={"voxel_id": voxel_id, "has_text": True},
        )
    vector: NDArray[np.float32] = embedder.embed([body])[0]
    return vector


def _hits(conn: Connection, scored: list[tuple[str, float]]) -> list[Hit]:
    if not scored:
        return []
    marks = ", ".join(f":v{i}" for i in range(len(scored)))
    if conn.dialect.name == "postgresql":
        head, join = "left(d.body, 480)", ""
    else:  # FTS5 keeps the body
        head, join = "substr(f.body, 1, 480)", " LEFT JOIN search_fts f ON f.rowid = d.doc_no"
    sql = (
        "SELECT d.voxel_id AS voxel_id, d.name AS name, d.label AS label, d.grp AS grp, "
        "d.lang AS lang, d.kind AS kind, d.size AS size, d.ts_unix AS ts_unix, "
        f"{head} AS head FROM search_docs d{join} WHERE d.voxel_id IN ({marks})"
    )
    rows = {
        str(r["voxel_id"]): r
        for r in conn.execute(text(sql), {f"v{i}": v for i, (v, _) in enumerate(scored)}).mappings()
    }
    hits = []
    for voxel_id, score in scored:
        r = rows.get(voxel_id)
        if r is None:  # a vector whose voxel is not (yet) in the text index
            continue
        snippet = " ".join(str(r["head"] or "").split())[:_SNIPPET_CHARS]
        hits.append(
            Hit(
                voxel_id=voxel_id,
                name=str(r["name"]),
                label=r["label"],
                group=r["grp"],
                lang=r["lang"],
                kind=r["kind"],
                size=int(r["size"]),
                ts=datetime.fromtimestamp(float(r["ts_unix"]), UTC),
                score=round(score, 6),
                snippet=[Segment(snippet)] if snippet else [],
            )
        )
    return hits
