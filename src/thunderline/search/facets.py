"""Exact facet counts from an in-process copy of the facet columns (issue 19, query latency).

Counting facets in SQL means reading, for every matching document, its ``search_docs`` row
and its ``search_terms`` rows: a join per match that cost 200-800 ms for a common word in
100k documents. Here the facet values of every indexed document are held per database as
NumPy arrays -- a code per document for ``label``/``grp``/``lang``/``kind``, and per
multi-valued field (entity types, entities, model labels) the (document, value) pairs -- so
counting the facets of a match set is one ``bincount`` per facet over the matches' positions.
The match set itself still comes from the query's own SQL (``SELECT doc_no ... WHERE``), so
the counts are exact and over *all* matches.

The copy is filled lazily: a match it does not hold is read then, by ``doc_no`` (with its
terms), so a process pays for the documents its queries touch, once -- a query matching 4k
documents reads 4k rows the first time, not the whole index. Kept current without a scan:

* PostgreSQL: ``doc_no`` comes from a sequence and is never reused, and a row's facet values
  never change (re-indexing is a delete and an insert), so a document the copy holds is
  always right, and a deleted one only holds its place (it matches nothing any more).
* SQLite: a ``doc_no`` can be given again (it is ``max + 1``), so the ``search_generation``
  counters of migration ``0011_search_generation`` are read before each use: a deletion or
  update since the last use empties the copy (it is filled again as queries need it).

The match set is read just before the copy is consulted; a document deleted in between is
left out of the counted positions (``facet_basis`` then says fewer than ``total``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

#: single-valued facets: facet name -> search_docs column
COLUMNS: Final[dict[str, str]] = {"label": "label", "group": "grp", "lang": "lang", "kind": "kind"}
#: multi-valued facets: facet name -> search_terms field
TERMS: Final[dict[str, str]] = {"entity.type": "etype", "entity": "entity", "model": "model"}
#: Documents the copy lacks are read this many at a time (``doc_no IN (...)``).
READ_CHUNK: Final = 5000


@dataclass(frozen=True)
class Counted:
    """A facet value's text (as shown) and how many matches have it."""

    value: str
    count: int


class _Codes:
    """Distinct strings and their integer codes (a code never changes once given)."""

    def __init__(self) -> None:
        self.code_of: dict[str, int] = {}
        self.values: list[str] = []

    def code(self, value: str) -> int:
        at = self.code_of.get(value)
        if at is None:
            at = self.code_of[value] = len(self.values)
            self.values.append(value)
        return at


class _Pairs:
    """A multi-valued field: the distinct (value, shown) pairs and each one's value code."""

    def __init__(self) -> None:
        self.pair_of: dict[tuple[str, str], int] = {}
        self.shown: list[str] = []
        self.value_code: list[int] = []
        self.values = _Codes()

    def code(self, value: str, shown: str) -> int:
        key = (value, shown)
        at = self.pair_of.get(key)
        if at is None:
            at = self.pair_of[key] = len(self.shown)
            self.shown.append(shown)
            self.value_code.append(self.values.code(value))
        return at


def _empty_int(dtype: Any = np.int64) -> NDArray[Any]:
    return np.zeros(0, dtype=dtype)


class FacetCache:
    """The facet values of every indexed document of one database, as NumPy arrays."""

    def __init__(self) -> None:
        """An empty copy (filled on the first :meth:`current`)."""
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.doc_nos: NDArray[np.int64] = _empty_int()
        # doc_no -> position: doc_nos sorted, and the position of each (doc_no values are
        # sparse on PostgreSQL, a sequence every re-index moves on: no dense array)
        self.sorted_nos: NDArray[np.int64] = _empty_int()
        self.sorted_pos: NDArray[np.int64] = _empty_int()
        self.columns: dict[str, NDArray[np.int32]] = {
            c: _empty_int(np.int32) for c in COLUMNS.values()
        }
        self.codes: dict[str, _Codes] = {c: _Codes() for c in COLUMNS.values()}
        # per field: position (in doc_nos) of each pair row, and the pair code
        self.term_pos: dict[str, NDArray[np.int64]] = {f: _empty_int() for f in TERMS.values()}
        self.term_code: dict[str, NDArray[np.int64]] = {f: _empty_int() for f in TERMS.values()}
        self.pairs: dict[str, _Pairs] = {f: _Pairs() for f in TERMS.values()}
        self.state: tuple[int, ...] | None = None

    # -- keeping it current --
    def current(self, conn: Connection, doc_nos: NDArray[np.int64]) -> NDArray[np.int64]:
        """Bring the copy up to date for these documents; their positions in it.

        See the module's docstring. A document that is not in the index any more (deleted
        after the match set was read) is left out of the positions.
        """
        if conn.dialect.name == "sqlite":
            row = conn.execute(
                text("SELECT inserts, deletes, epoch FROM search_generation WHERE id = 1")
            ).one()
            state = (int(row[0]), int(row[1]), hash(str(row[2])))
            if self.state is not None and state[1:] != self.state[1:]:
                self._reset()  # a row deleted or rewritten: its doc_no may hold another now
            self.state = state
        missing = self._missing(doc_nos)
        for start in range(0, len(missing), READ_CHUNK):
            chunk = missing[start : start + READ_CHUNK]
            nums = ", ".join(str(int(n)) for n in chunk)  # integers from the database
            self._read(conn, f"doc_no IN ({nums})", {})
        pos = self._positions(doc_nos)
        return pos[pos >= 0]

    def _missing(self, doc_nos: NDArray[np.int64]) -> NDArray[np.int64]:
        return doc_nos[self._positions(doc_nos) < 0]

    def _positions(self, doc_nos: NDArray[np.int64]) -> NDArray[np.int64]:
        """Each document's position in the copy (-1: not held)."""
        if not len(self.sorted_nos) or not len(doc_nos):
            return np.full(len(doc_nos), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.sorted_nos, doc_nos), len(self.sorted_nos) - 1)
        return np.where(self.sorted_nos[at] == doc_nos, self.sorted_pos[at], -1)

    def _read(self, conn: Connection, where: str, params: dict[str, Any]) -> None:
        rows = conn.execute(
            text(
                f"SELECT doc_no, label, grp, lang, kind FROM search_docs WHERE {where} "
                "ORDER BY doc_no"
            ),
            params,
        ).all()
        numbers = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        fresh = self._positions(numbers) < 0  # not held already
        if not fresh.all():
            rows = [r for r, keep in zip(rows, fresh.tolist(), strict=True) if keep]
            numbers = numbers[fresh]
        if not rows:
            return
        base = len(self.doc_nos)
        self.doc_nos = np.concatenate([self.doc_nos, numbers])
        self.sorted_pos = np.argsort(self.doc_nos, kind="stable")
        self.sorted_nos = self.doc_nos[self.sorted_pos]
        position = {int(n): base + i for i, n in enumerate(numbers.tolist())}
        for i, column in enumerate(COLUMNS.values(), start=1):
            codes = self.codes[column]
            block = np.fromiter(
                (-1 if r[i] is None else codes.code(str(r[i])) for r in rows),
                dtype=np.int32,
                count=len(rows),
            )
            self.columns[column] = np.concatenate([self.columns[column], block])
        fields = ", ".join(f"'{f}'" for f in TERMS.values())
        terms = conn.execute(
            text(
                "SELECT doc_no, field, value, shown FROM search_terms "
                f"WHERE ({where}) AND field IN ({fields})"
            ),
            params,
        ).all()
        found: dict[str, tuple[list[int], list[int]]] = {f: ([], []) for f in TERMS.values()}
        for doc_no, field_, value, shown in terms:
            at = position.get(int(doc_no))
            if at is None:  # committed between the two statements, or held already: not read
                continue
            docs, codes_ = found[str(field_)]
            docs.append(at)
            codes_.append(self.pairs[str(field_)].code(str(value), str(shown)))
        for field_, (docs, codes_) in found.items():
            if not docs:
                continue
            self.term_pos[field_] = np.concatenate(
                [self.term_pos[field_], np.asarray(docs, dtype=np.int64)]
            )
            self.term_code[field_] = np.concatenate(
                [self.term_code[field_], np.asarray(codes_, dtype=np.int64)]
            )

    # -- counting --
    def count(self, pos: NDArray[np.int64], limit: int) -> dict[str, list[Counted]]:
        """Every facet's ``limit`` most frequent values over the documents at ``pos`` (exact)."""
        out: dict[str, list[Counted]] = {}
        for name, column in COLUMNS.items():
            codes = self.columns[column][pos]
            codes = codes[codes >= 0]
            counts = np.bincount(codes, minlength=len(self.codes[column].values))
            out[name] = _top(
                [
                    (self.codes[column].values[int(c)], int(counts[c]))
                    for c in np.flatnonzero(counts)
                ],
                limit,
            )
        mask = np.zeros(len(self.doc_nos), dtype=bool)
        mask[pos] = True
        for name, field_ in TERMS.items():
            pairs = self.pairs[field_]
            chosen = self.term_code[field_][mask[self.term_pos[field_]]]
            if not len(chosen):
                out[name] = []
                continue
            per_pair = np.bincount(chosen, minlength=len(pairs.shown))
            seen = np.flatnonzero(per_pair)
            value_codes = np.asarray(pairs.value_code, dtype=np.int64)[seen]
            per_value = np.bincount(value_codes, weights=per_pair[seen]).astype(np.int64)
            shown: dict[int, str] = {}
            for pair, vcode in zip(seen.tolist(), value_codes.tolist(), strict=True):
                text_ = pairs.shown[pair]
                if vcode not in shown or text_ < shown[vcode]:
                    shown[vcode] = text_  # the facet shows min(shown), as SQL did
            out[name] = _top([(shown[v], int(per_value[v])) for v in shown], limit)
        return out


def _top(counted: list[tuple[str, int]], limit: int) -> list[Counted]:
    counted.sort(key=lambda vn: (-vn[1], vn[0]))
    return [Counted(v, n) for v, n in counted[:limit]]


_CACHES: dict[str, FacetCache] = {}
_CACHES_LOCK = threading.Lock()


def cache_for(engine: Engine) -> FacetCache:
    """The process-wide facet cache of this database."""
    key = engine.url.render_as_string(hide_password=True)
    with _CACHES_LOCK:
        return _CACHES.setdefault(key, FacetCache())
