"""PostgreSQL: ``ts_rank_cd`` of a query's match computed on the smallest query with the same score.

A word's ``tsquery`` is the OR of its variants, one per text search configuration of the
index (``'encod' | 'encoding'``: ``english`` and ``simple``; a phrase ``'this' <-> 'module' |
'modul'``). ``ts_rank_cd`` pays for every item of the query it is given, on every match: it
zeroes a position buffer of 32 kB per query item per call (PostgreSQL's ``calc_rank_cd``), so
ranking the 13,824 matches of ``"this module"`` with its 5-item query took 2.3 times as long
as with ``'modul'`` alone -- for the same scores on all but the matches holding ``this`` or
``module``.

**Why the score is the same.** Take the query ``q`` whose every word is the OR of its
variants, and ``R_c`` the same tree with each word replaced by its variant in one
configuration ``c``. Every variant is a conjunction of lexemes (``plainto_tsquery``: ``&``;
``phraseto_tsquery``: ``<->`` / ``<N>``; no dictionary of ours yields alternatives). Let
``E_c`` be the lexemes of ``q`` that ``R_c`` lacks. On a document that holds none of ``E_c``:

* ``ts_rank_cd`` collects the positions of the query's lexemes present in the document: the
  same positions for ``q`` and ``R_c`` (every lexeme of ``q`` present is one of ``R_c``);
* it then looks for covers, evaluating the query on the operands seen so far. Every other
  variant of a word holds a lexeme of ``E_c`` (checked per query, below), absent from the
  document, so that variant is false on every stretch of it, and each word's OR evaluates
  as its ``c`` variant alone: the same covers, the same sum.

So for each configuration ``c`` whose other variants each hold a lexeme of ``E_c`` (and whose
own variant of every word is not empty), a match without any lexeme of ``E_c`` -- one
``@@`` test, a binary search in its ``tsvector`` -- is ranked on ``R_c``; any other match on
``q`` itself.

**One word whose variant is one lexeme** (``'modul'`` for ``"this module"``, ``'encod'``):
every cover of ``R_c`` is one position, so positions of other lexemes collected for ``q``
never fall inside a cover. There it is enough that no other variant can be true anywhere
in the document -- each lacks one of its lexemes (``'this' & 'module'`` not matched) --
even if the document holds some extra lexemes: the covers are those of ``R_c``, one per
position of its lexeme, each scoring that position's weight.

The variants' lexemes are read first (:func:`read_variants`: one small statement, prepared
after a few searches); the tests of each branch are bound parameters (``tsquery`` text made
of lexemes the database returned, quoted), so the ranked statement stays quick to plan, and
a query with nothing to reduce (``thread``: its variants coincide) is the statement it was.
Checked on the 100k benchmark store: every match's score equal, float for float, over the
benchmark's words and phrases; the tests check it on real documents in three languages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text

from thunderline.search.lru import Lru

#: More words x configurations than this: no reduced ranking (one statement more to read)
MAX_CELLS: Final = 24
#: ``ts_rank_cd`` of the full query (the reference the reduced ranking equals)
FULL_RANK: Final = "ts_rank_cd(d.tsv, qq.q)"


@dataclass(frozen=True)
class Leaf:
    """One word (or phrase) of the query: its tsquery function and its bound value."""

    function: str  # plainto_tsquery | phraseto_tsquery
    value: str  # the bind parameter (":p0")

    def variant(self, config: str) -> str:
        """The word's ``tsquery`` in ``config``."""
        return f"{self.function}('{config}', {self.value})"


@dataclass(frozen=True)
class Variant:
    """What the database made of one word in one configuration."""

    lexemes: frozenset[str]  # its distinct lexemes (to_tsvector's parse: the same words)
    nodes: int  # numnode: operands and operators (0: empty, 1: one lexeme)
    text: str  # the tsquery as text (equal text: the same query)


def read_variants(
    conn: Any,
    leaves: Sequence[Leaf],
    configs: Sequence[str],
    params: dict[str, Any],
    *,
    also: str | None = None,
) -> tuple[list[list[Variant]], Any]:
    """Each word's variant in each configuration (``[word][config]``), in one statement.

    ``also``: one more SQL expression read in the same statement (its value is returned
    second; None without it) -- the index's languages, saving their own round trip.
    """
    columns = ", ".join(
        f"tsvector_to_array(to_tsvector('{c}', {leaf.value})), numnode({leaf.variant(c)}), "
        f"{leaf.variant(c)}::text"
        for leaf in leaves
        for c in configs
    )
    if also is not None:
        columns += f", {also}"
    row = conn.execute(text(f"SELECT {columns}"), params).one()
    width = 3 * len(leaves) * len(configs)
    cells = [
        Variant(frozenset(row[i]), int(row[i + 1]), str(row[i + 2])) for i in range(0, width, 3)
    ]
    grid = [cells[j * len(configs) : (j + 1) * len(configs)] for j in range(len(leaves))]
    return grid, (row[width] if also is not None else None)


#: Words x configurations whose variants :class:`VariantCache` keeps per database
VARIANT_CACHE_SIZE: Final = 4096


class VariantCache:
    """What the server made of each word in each configuration, kept per database (LRU).

    A variant is a function of the word, the function (``plainto_tsquery`` /
    ``phraseto_tsquery``) and the text search configuration alone -- never of the index's
    rows -- so it is read once per process instead of once per search (a round trip and a
    statement, 0.7 ms of a 5 ms search at 20k documents). A configuration redefined on the
    server (``ALTER TEXT SEARCH ...``) is seen by a new process; :meth:`clear` forgets all.
    """

    def __init__(self, size: int = VARIANT_CACHE_SIZE) -> None:
        self._cells: Lru[tuple[str, str, str, str], Variant] = Lru(size)

    def clear(self) -> None:
        """Forget every variant."""
        self._cells.clear()

    def read(
        self,
        db: str,
        conn: Any,
        leaves: Sequence[Leaf],
        configs: Sequence[str],
        params: dict[str, Any],
    ) -> list[list[Variant]]:
        """:func:`read_variants`' grid, from the cache; what it lacks read on ``conn`` at once."""
        keys = [
            [(db, leaf.function, str(params[leaf.value.lstrip(":")]), c) for c in configs]
            for leaf in leaves
        ]
        held = self._cells.get_many(k for row in keys for k in row)
        if all(k in held for row in keys for k in row):
            return [[held[k] for k in row] for row in keys]
        grid, _ = read_variants(conn, leaves, configs, params)
        self._cells.put_many(
            (key, variant)
            for row_keys, variant_row in zip(keys, grid, strict=True)
            for key, variant in zip(row_keys, variant_row, strict=True)
        )
        return grid


#: The process's variants (:class:`VariantCache`), every database's keyed by its URL
VARIANTS: Final = VariantCache()


def _quoted(lexeme: str) -> str:
    """A lexeme in the ``tsquery`` input syntax (quote and backslash escaped)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def branch_tests(
    variants: Sequence[Sequence[Variant]], i: int, *, word: bool
) -> tuple[str | None, str | None]:
    """For configuration ``i``: ``(E_i, S_i)`` as ``tsquery`` text, or None where not usable.

    A match ranks on ``R_i`` when it matches neither ``E_i`` (the lexemes ``R_i`` lacks;
    None when configuration ``i`` does not qualify) or, for one word whose variant is one
    lexeme, not ``S_i`` (the OR of the AND of each other variant's lexemes).
    """
    every = frozenset().union(*(v.lexemes for row in variants for v in row))
    own = frozenset().union(*(row[i].lexemes for row in variants))
    extras = every - own
    qualified = all(row[i].nodes > 0 for row in variants) and all(
        v.nodes == 0 or v.text == row[i].text or v.lexemes & extras
        for row in variants
        for k, v in enumerate(row)
        if k != i
    )
    e_test = " | ".join(map(_quoted, sorted(extras))) if qualified and extras else None
    s_test = None
    if word and variants[0][i].nodes == 1:
        others = {v.text: v for k, v in enumerate(variants[0]) if k != i and v.nodes > 0}
        others.pop(variants[0][i].text, None)
        if others:
            s_test = " | ".join(
                "(" + " & ".join(map(_quoted, sorted(v.lexemes))) + ")" for v in others.values()
            )
    return e_test, s_test


def reduced_rank(
    variants: Sequence[Sequence[Variant]],
    reduced: Sequence[str],
    bind: Any,
    *,
    word: bool = False,
) -> tuple[list[str], str]:
    """Columns for the query's ``qq`` subquery and the rank expression over ``d`` and ``qq``.

    Args:
        variants: each word's variant per configuration (:func:`read_variants`), the
            configurations in the order their branches are tried.
        reduced: for each configuration, the SQL of the tree with each word in it (``R_c``).
        bind: binds a value as a parameter, returning its SQL placeholder.
        word: the tree is one word alone (no AND, OR or NOT around it).

    Returns:
        ``([], FULL_RANK)`` when no configuration gives a reduction, else the select-list
        items to add to ``qq`` and the ``CASE`` ranking a match on the first ``R_c`` it
        qualifies for, on ``q`` otherwise.
    """
    columns: list[str] = []
    branches: list[str] = []
    for i, tree in enumerate(reduced):
        e_test, s_test = branch_tests(variants, i, word=word)
        if s_test is not None and e_test is not None:
            # S implies E: each other variant in S holds a lexeme R_i lacks (what qualifies
            # E), so a match where S holds also holds E, and NOT E OR NOT S is NOT S alone --
            # one test per match instead of up to two (each @@ is a binary search per match:
            # "this module" ranked 13,824 matches with E then S for most of them, 4-5 ms over
            # the raw query at 100k documents; for 'encoding' / 'encod' E and S were the same
            # lexeme, tested twice on a match holding it: 0.3 ms of 1.4 for 768 matches)
            e_test = None
        tests = [
            f"NOT (d.tsv @@ CAST({bind(value)} AS tsquery))"
            for value in (e_test, s_test)
            if value is not None
        ]
        if tests:
            columns.append(f"(SELECT {tree}) AS r{i}")
            branches.append(f"WHEN {' OR '.join(tests)} THEN ts_rank_cd(d.tsv, qq.r{i})")
    if not branches:
        return [], FULL_RANK
    return columns, f"CASE {' '.join(branches)} ELSE {FULL_RANK} END"
