"""Running a parsed query on SQLite FTS5 or PostgreSQL ``tsvector``: hits, snippets, facets.

Compilation (:class:`_Compiler`): a query tree becomes a SQL boolean over ``search_docs d``
whose every user-supplied value is a bound parameter -- SQL text is only ever made of fixed
fragments and generated parameter names. The full-text part of the query, when it can be
expressed on its own (the children of the top-level AND that hold only words), becomes ONE
native full-text condition so the index answers it and ranks it:

* SQLite: an FTS5 ``MATCH`` expression (itself a bound parameter, built from word characters
  only: ``"python"``, ``"guido van rossum"``, ``"pyth" *``, ``AND`` / ``OR`` / ``NOT``),
  ranked by ``bm25`` with the name weighted 10, entities 4, labels 2, the body 1.
* PostgreSQL: a ``tsquery`` built with ``plainto_tsquery`` / ``phraseto_tsquery`` /
  ``to_tsquery(... ':*')`` in the ``simple`` configuration, ``english`` and the configuration
  of every ``lang:`` filter, combined with ``&&`` / ``||`` / ``!!``; ranked by ``ts_rank_cd``
  (each match on the smallest query that gives it the same score: :mod:`.pgrank`).

Words inside OR/NOT with field filters (``python OR label:pdf``) are compiled leaf by leaf
(``doc_no IN (... MATCH ...)`` / ``tsv @@ ...``); such a query is ordered by time.

Paging is by keyset -- (score, doc_no) or (time, doc_no) -- in an opaque cursor bound to the
query and the order, so a page never repeats or skips a row that was there when paging began.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from thunderline.errors import BackendError
from thunderline.search.document import norm
from thunderline.search.facets import cache_for as facet_cache_for
from thunderline.search.index import (
    DEFAULT_CONFIG,
    PG_CONFIGS,
    languages_array,
    languages_statement,
    pg_config,
)
from thunderline.search.lru import Lru
from thunderline.search.pgarray import int_array
from thunderline.search.pgrank import (
    FULL_RANK,
    MAX_CELLS,
    VARIANT_CACHE_SIZE,
    VARIANTS,
    Leaf,
    reduced_rank,
)
from thunderline.search.query import (
    And,
    Field,
    Node,
    Not,
    Or,
    QuerySyntaxError,
    Words,
    excerpt,
    field_values,
    has_field,
    has_text,
    parse,
    stemmed,
)
from thunderline.search.stem import body_snippet

Order = Literal["relevance", "time"]
MAX_LIMIT: Final = 200
FACET_LIMIT: Final = 15
#: facet name -> (column of search_docs | None, search_terms field | None)
FACETS: Final[dict[str, tuple[str | None, str | None]]] = {
    "label": ("label", None),
    "group": ("grp", None),
    "lang": ("lang", None),
    "kind": ("kind", None),
    "entity.type": (None, "etype"),
    "entity": (None, "entity"),
    "model": (None, "model"),
}
_COLUMNS: Final = {"label": "label", "group": "grp", "lang": "lang", "kind": "kind"}
_SNIPPET_CHARS: Final = 240
_PG_HEADLINE_CHARS: Final = 20_000


@dataclass(frozen=True)
class Segment:
    """A piece of a snippet; ``match`` says whether it is a highlighted hit."""

    text: str
    match: bool = False


@dataclass(frozen=True)
class Hit:
    """One search hit: the voxel's id, name, labels, size and time, its score and snippet.

    ``score`` is the relevance (higher is better), None when the results are ordered by time.
    """

    voxel_id: str
    name: str
    label: str | None
    group: str | None
    lang: str | None
    kind: str | None
    size: int
    ts: datetime
    score: float | None
    snippet: list[Segment]

    def as_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready data (``ts`` as ISO 8601, snippet segments as dicts)."""
        return {
            "voxel_id": self.voxel_id,
            "name": self.name,
            "label": self.label,
            "group": self.group,
            "lang": self.lang,
            "kind": self.kind,
            "size": self.size,
            "ts": self.ts.isoformat(),
            "score": self.score,
            "snippet": [{"text": s.text, "match": s.match} for s in self.snippet],
        }


@dataclass(frozen=True)
class FacetValue:
    """One value of a facet and how many of the counted matches have it."""

    value: str
    count: int


@dataclass
class SearchResult:
    """One page of results for a query, with the cursor of the next page (None on the last).

    ``total`` and ``facets`` are filled only when facets were asked for; ``facet_basis`` is
    then how many matches the facet counts were made over (all of them, but those deleted
    while the query ran).
    """

    query: str
    order: Order
    hits: list[Hit]
    next_cursor: str | None
    total: int | None = None
    facets: dict[str, list[FacetValue]] = field(default_factory=dict)
    facet_basis: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The page as JSON-ready data (the shape of the API's ``SearchPage``)."""
        return {
            "query": self.query,
            "order": self.order,
            "total": self.total,
            "facet_basis": self.facet_basis,
            "next_cursor": self.next_cursor,
            "hits": [h.as_dict() for h in self.hits],
            "facets": {
                name: [{"value": v.value, "count": v.count} for v in values]
                for name, values in self.facets.items()
            },
        }


class CursorError(QuerySyntaxError):
    """A cursor that is malformed or belongs to another query or order."""

    reason = "bad_cursor"


# ---- compilation ---------------------------------------------------------------------------
class _Compiler:
    def __init__(
        self, dialect: str, tree: Node | None, langs: Sequence[str] = (), db: str = ""
    ) -> None:
        self.pg = dialect == "postgresql"
        self.db = db  # the database's key (its URL): the words' variants are cached by it
        self.params: dict[str, Any] = {}
        # words are stemmed in every language of the index and of a lang: filter
        stem_langs = [*langs, *(str(lang) for lang in field_values(tree, "lang"))]
        configs = ["simple", DEFAULT_CONFIG, *(pg_config(lang) for lang in stem_langs)]
        self.configs = list(dict.fromkeys(configs))
        self.stem_langs = list(dict.fromkeys(lang.split("-")[0].lower() for lang in stem_langs))
        #: PostgreSQL: each word's tsquery function and bound value, by node (``tsq``)
        self.leaves: dict[int, Leaf] = {}
        #: PostgreSQL, ranked: the text of each word's tsquery (function, words) and of its
        #: variant in a configuration (function, words, configuration), as the server made
        #: them: bound as constants (``CAST(:p AS tsquery)``), the same query without the
        #: expressions building it planned in every statement (:func:`_word_queries`)
        self.texts: dict[tuple[str, str], str] = {}
        self.variant_texts: dict[tuple[str, str, str], str] = {}
        self.prefixes: dict[int, str] = {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    # -- full text, native --
    def fts(self, node: Node) -> str | None:
        """An FTS5 MATCH expression for a words-only tree (None: not expressible)."""
        if isinstance(node, Words):
            phrase = " ".join(node.tokens).replace('"', '""')
            plain = f'"{phrase}"' + (" *" if node.prefix else "")
            # SQLite: the same words stemmed in each non-English language of the index,
            # looked up in the ``stems`` column (Snowball; thunderline.search.stem)
            stems = [stemmed(node, lang) for lang in self.stem_langs]
            variants = dict.fromkeys(" ".join(s) for s in stems if s)
            if not variants:
                return plain
            return "(" + " OR ".join([plain, *(f'stems : "{v}"' for v in variants)]) + ")"
        if isinstance(node, Or):
            parts = [self.fts(c) for c in node.children]
            return None if None in parts else "(" + " OR ".join(map(str, parts)) + ")"
        if isinstance(node, And):
            pos = [c for c in node.children if not isinstance(c, Not)]
            neg = [c.child for c in node.children if isinstance(c, Not)]
            pos_parts = [self.fts(c) for c in pos]
            neg_parts = [self.fts(c) for c in neg]
            if not pos or None in pos_parts or None in neg_parts:
                return None
            expr = "(" + " AND ".join(map(str, pos_parts)) + ")"
            for part in neg_parts:
                expr = f"({expr} NOT {part})"
            return expr
        return None  # a lone NOT, or a field

    def tsq(self, node: Node) -> str:
        """A PostgreSQL tsquery expression for a words-only tree."""
        if isinstance(node, Words):
            if node.prefix:
                lexemes = " <-> ".join(node.tokens)
                prefix = f"to_tsquery('simple', {self.bind(lexemes + ':*')})"
                self.prefixes[id(node)] = prefix
                return prefix
            function = _function(node)
            words = " ".join(node.tokens)
            value = self.bind(words)
            self.leaves[id(node)] = Leaf(function, value)
            known = self.texts.get((function, words))
            if known is not None:
                return f"CAST({self.bind(known)} AS tsquery)"
            return _any_config(function, value, self.configs)
        if isinstance(node, Not):
            return f"(!! {self.tsq(node.child)})"
        if isinstance(node, And | Or):
            glue = " && " if isinstance(node, And) else " || "
            return "(" + glue.join(self.tsq(c) for c in node.children) + ")"
        raise AssertionError("fields are not full text")  # pragma: no cover

    def tsq_in(self, node: Node, config: str) -> str:
        """The tree :meth:`tsq` compiled, each word in ``config`` only (same parameters)."""
        if isinstance(node, Words):
            if node.prefix:
                return self.prefixes[id(node)]
            leaf = self.leaves[id(node)]
            known = self.variant_texts.get((leaf.function, " ".join(node.tokens), config))
            if known is not None:
                return f"CAST({self.bind(known)} AS tsquery)"
            return leaf.variant(config)
        if isinstance(node, Not):
            return f"(!! {self.tsq_in(node.child, config)})"
        if isinstance(node, And | Or):
            glue = " && " if isinstance(node, And) else " || "
            return "(" + glue.join(self.tsq_in(c, config) for c in node.children) + ")"
        raise AssertionError("fields are not full text")  # pragma: no cover

    def rank(self, node: Node, conn: Any) -> tuple[list[str], str]:
        """``ts_rank_cd`` of :meth:`tsq`'s query, on smaller queries of the same score.

        See :mod:`thunderline.search.pgrank` (the words' variants come from its
        :data:`~thunderline.search.pgrank.VARIANTS` cache, what it lacks read on ``conn``:
        None ranks on the full query). Returns the extra ``qq`` columns and the rank
        expression.
        """
        leaves = list(self.leaves.values())
        order = [DEFAULT_CONFIG, *(c for c in self.configs if c not in ("simple", DEFAULT_CONFIG))]
        configs = [c for c in [*order, "simple"] if c in self.configs]
        if conn is None or not leaves or len(configs) < 2 or len(leaves) * len(configs) > MAX_CELLS:
            return [], FULL_RANK
        variants = VARIANTS.read(self.db, conn, leaves, configs, self.params)
        for leaf, row in zip(leaves, variants, strict=True):
            words = str(self.params[leaf.value.lstrip(":")])
            for config, variant in zip(configs, row, strict=True):
                self.variant_texts[(leaf.function, words, config)] = variant.text
        reduced = [self.tsq_in(node, c) for c in configs]
        word = isinstance(node, Words) and not node.prefix
        return reduced_rank(variants, reduced, self.bind, word=word)

    # -- SQL --
    def sql(self, node: Node) -> str:
        if isinstance(node, Words):
            if self.pg:
                return f"d.tsv @@ {self.tsq(node)}"
            match = self.bind(self.fts(node))
            return f"d.doc_no IN (SELECT rowid FROM search_fts WHERE search_fts MATCH {match})"
        if isinstance(node, Field):
            return self.field(node)
        if isinstance(node, Not):
            return f"NOT ({self.sql(node.child)})"
        glue = " AND " if isinstance(node, And) else " OR "
        return "(" + glue.join(self.sql(c) for c in node.children) + ")"

    def _like(self, value: str, *, contains: bool, prefix: bool) -> str:
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = ("%" if contains else "") + escaped + ("%" if contains or prefix else "")
        return f"LIKE {self.bind(pattern)} ESCAPE '\\'"

    def _term(self, field_: str, value: str, *, prefix: bool, suffix: bool = False) -> str:
        if prefix or suffix:
            test = "t.value " + self._like(value, contains=False, prefix=prefix)
            if suffix:
                test = "t.value " + self._like_suffix(value, prefix=prefix)
        else:
            test = f"t.value = {self.bind(value)}"
        fields = (
            "t.field IN ('entity', 'entnum')" if field_ == "entity" else f"t.field = '{field_}'"
        )
        return f"EXISTS (SELECT 1 FROM search_terms t WHERE t.doc_no = d.doc_no AND {fields} AND {test})"

    def _like_suffix(self, value: str, *, prefix: bool) -> str:
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"LIKE {self.bind('%=' + escaped + ('%' if prefix else ''))} ESCAPE '\\'"

    def field(self, node: Field) -> str:
        name, value = node.name, node.value
        if name in _COLUMNS:
            return f"lower(d.{_COLUMNS[name]}) = {self.bind(str(value).lower())}"
        if name == "entity":
            return self._term("entity", norm(str(value)), prefix=node.prefix)
        if name == "entity.type":
            return self._term("etype", norm(str(value)), prefix=False)
        if name == "model":
            raw = norm(str(value))
            if "=" in raw:
                return self._term("model", raw, prefix=node.prefix)
            return self._term("model", raw, prefix=node.prefix, suffix=True)
        if name == "name":
            like = self._like(str(value).lower(), contains=True, prefix=False)
            return f"lower(d.name) {like}"
        if name == "after":
            return f"d.ts_unix >= {self.bind(float(value))}"
        if name == "before":
            return f"d.ts_unix < {self.bind(float(value))}"
        if name == "size":
            op = "=" if node.op in (":", "=") else node.op
            return f"d.size {op} {self.bind(int(value))}"
        raise AssertionError(f"unknown field {name}")  # pragma: no cover


@dataclass
class _Plan:
    """A compiled query: FROM, WHERE, parameters and the rank expression (None: by time)."""

    from_: str
    where: str
    params: dict[str, Any]
    rank: str | None
    match_param: str | None  # SQLite: the MATCH parameter (snippets); PG: tsquery SQL
    tsquery: str | None
    text_only: bool = False  # SQLite: the MATCH is the whole condition (rank inside FTS5)


def _plan(
    dialect: str,
    tree: Node | None,
    langs: Sequence[str] = (),
    conn: Any = None,
    *,
    db: str | None = None,
) -> _Plan:
    """Compile ``tree``; ``conn`` (PostgreSQL): read the words' variants there for the rank.

    ``db``: the database's key for the variants' cache (default: ``conn``'s engine URL).
    """
    if db is None:
        db = "" if conn is None else conn.engine.url.render_as_string(hide_password=True)
    comp = _Compiler(dialect, tree, langs, db)
    children: list[Node] = (
        [] if tree is None else list(tree.children) if isinstance(tree, And) else [tree]
    )
    text_only = [c for c in children if has_text(c) and not has_field(c)]
    rest = [c for c in children if c not in text_only]
    conditions: list[str] = []
    rank: str | None = None
    match_param: str | None = None
    tsquery: str | None = None
    from_ = "search_docs d"
    if text_only:
        text_tree = text_only[0] if len(text_only) == 1 else And(tuple(text_only))
        if comp.pg:
            if any(not isinstance(c, Not) for c in text_only):
                if conn is not None:  # ranked: the words' queries as constants
                    comp.texts = _word_queries(db, conn, text_tree, comp.configs)
                tsquery = comp.tsq(text_tree)
                extra, rank = comp.rank(text_tree, conn)
                columns = ", ".join([f"{tsquery} AS q", *extra])
                from_ = f"search_docs d CROSS JOIN (SELECT {columns}) qq"
                conditions.append("d.tsv @@ qq.q")
            else:
                rest = children
        else:
            expr = comp.fts(text_tree)
            if expr is not None:
                match_param = comp.bind(expr)
                from_ = "search_fts JOIN search_docs d ON d.doc_no = search_fts.rowid"
                conditions.append(f"search_fts MATCH {match_param}")
                rank = "-bm25(search_fts, 10.0, 1.0, 4.0, 2.0)"
            else:
                rest = children
    fts_only = bool(match_param is not None and not rest)
    conditions += [comp.sql(c) for c in rest]
    where = " AND ".join(conditions) if conditions else "1 = 1"
    return _Plan(from_, where, comp.params, rank, match_param, tsquery, fts_only)


def _function(node: Words) -> str:
    """PostgreSQL: the tsquery function of a (non-prefix) word or phrase."""
    return "plainto_tsquery" if len(node.tokens) == 1 else "phraseto_tsquery"


def _any_config(function: str, value: str, configs: Sequence[str]) -> str:
    """PostgreSQL: a word's tsquery in any of ``configs``, the words bound as ``value``.

    The configurations' queries OR-ed, each distinct one once: most words stem the same in
    several ('thread' | 'thread'), and ts_rank_cd pays for every operand (twice the time
    for the same scores); empty ones (stop words) left out. All empty (no lexeme at all,
    e.g. '_'): the empty query, as before.
    """
    variants = ", ".join(f"{function}('{c}', {value})" for c in configs)
    first = f"{function}('{configs[0]}', {value})"
    return (
        "coalesce((SELECT string_agg('(' || u.x::text || ')', ' | ' ORDER BY "
        f"u.x::text)::tsquery FROM (SELECT DISTINCT x FROM unnest(ARRAY[{variants}]) "
        f"AS x WHERE x::text <> '') AS u), {first})"
    )


def _leaf_words(node: Node) -> Iterator[Words]:
    """The words and phrases (not prefixes) of a words-only tree."""
    if isinstance(node, Words):
        if not node.prefix:
            yield node
    elif isinstance(node, Not):
        yield from _leaf_words(node.child)
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from _leaf_words(child)


_WORD_QUERIES: Lru[tuple[str, str, str, tuple[str, ...]], str] = Lru(VARIANT_CACHE_SIZE)


def _word_queries(
    db: str, conn: Any, tree: Node, configs: Sequence[str]
) -> dict[tuple[str, str], str]:
    """PostgreSQL: the text of each word's :func:`_any_config` query, read once per process.

    The text is what the server made of the expression (``(...)::text``), a function of the
    words and the configurations alone (as :class:`~thunderline.search.pgrank.VariantCache`'s
    variants), so the query it is cast back to (``CAST(:p AS tsquery)``: a tsquery's text
    is its input syntax) is the same query, without the ``string_agg`` over an ``unnest``
    planned again in the page's and the snippets' statements of every search (0.1-0.2 ms
    each at 20k documents). What the cache lacks is read in one statement on ``conn``.
    """
    wanted = {(_function(w), " ".join(w.tokens)) for w in _leaf_words(tree)}
    key_of = {item: (db, *item, tuple(configs)) for item in wanted}
    held = _WORD_QUERIES.get_many(key_of.values())
    out = {item: held[key] for item, key in key_of.items() if key in held}
    missing = sorted(item for item in wanted if item not in out)
    if not missing:
        return out
    columns = ", ".join(
        f"({_any_config(function, f':w{i}', configs)})::text"
        for i, (function, _) in enumerate(missing)
    )
    params = {f"w{i}": words for i, (_, words) in enumerate(missing)}
    row = _Rows(conn)(f"SELECT {columns}", params)[0]
    read = {item: str(value) for item, value in zip(missing, row, strict=True)}
    _WORD_QUERIES.put_many((key_of[item], value) for item, value in read.items())
    return {**out, **read}


#: Compiled plans kept (:func:`_cached_plan`)
PLAN_CACHE_SIZE: Final = 512
_PLANS: Lru[tuple[str, str, str, tuple[str, ...], bool], _Plan] = Lru(PLAN_CACHE_SIZE)


def _cached_plan(
    db: str, dialect: str, query: str, tree: Node | None, langs: Sequence[str], conn: Any
) -> _Plan:
    """:func:`_plan` of ``query``, compiled once per (database, query, languages, ranked).

    A plan is a function of these alone: the query's text (its tree), the index's languages
    (read by the caller for every search, never cached here) and, ranked on PostgreSQL, the
    words' variants (a function of the server's configurations: :class:`VariantCache`). It
    holds SQL text and bound values only -- no row of the index -- so a cached plan can never
    return a stale row. Plans are immutable once built (callers copy ``params``).
    """
    key = (db, dialect, query, tuple(langs), conn is not None)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _plan(dialect, tree, langs, conn, db=db)
        _PLANS.put(key, plan)
    return plan


def clear_caches() -> None:
    """Forget every cached plan, parsed query and word variant (tests; a changed server)."""
    _PLANS.clear()
    _WORD_QUERIES.clear()
    _parsed.cache_clear()
    VARIANTS.clear()


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE)
def _parsed(query: str) -> Node | None:
    """:func:`~thunderline.search.query.parse`, cached (a tree is immutable).

    Errors are not cached: they are raised again.
    """
    return parse(query)


# ---- cursors -------------------------------------------------------------------------------
def _fingerprint(query: str, order: str) -> str:
    return hashlib.sha256(f"{order}\n{query}".encode("utf-8", "replace")).hexdigest()[:16]


def encode_cursor(query: str, order: str, key: float, doc_no: int) -> str:
    """An opaque paging cursor: the last hit's sort key and doc_no, tied to query and order.

    It is URL-safe base64 of JSON holding a fingerprint of ``query`` and ``order``, so
    :func:`decode_cursor` refuses it for any other query or order.
    """
    raw = json.dumps({"h": _fingerprint(query, order), "k": key, "n": doc_no})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: str, order: str) -> tuple[float, int]:
    """The sort key and doc_no a cursor from :func:`encode_cursor` resumes after.

    Raises:
        CursorError: the cursor is malformed, holds a non-finite key, or was made for
            another query or order.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        key, number, fp = float(data["k"]), int(data["n"]), str(data["h"])
    except (ValueError, TypeError, KeyError) as exc:
        raise CursorError("malformed cursor", 0, cursor) from exc
    if fp != _fingerprint(query, order):
        raise CursorError("the cursor belongs to another query or order", 0, cursor)
    if key != key or key in (float("inf"), float("-inf")):
        raise CursorError("malformed cursor", 0, cursor)
    return key, number


# ---- snippets ------------------------------------------------------------------------------
#: Highlighted segments by text, shared (a Segment is immutable): a page's snippets mark the
#: same few words again and again, and a frozen dataclass costs ~1 us to build
_HIT_SEGMENTS: dict[str, Segment] = {}


def segments(marked: str) -> list[Segment]:
    r"""Split text with \x02 ... \x03 around hits into segments."""
    out: list[Segment] = []
    append = out.append
    first, *parts = marked.split("\x02")
    if first:
        append(Segment(first.replace("\x03", "")))
    hits = _HIT_SEGMENTS
    for part in parts:
        hit, _, rest = part.partition("\x03")
        if hit:
            segment = hits.get(hit)
            if segment is None:
                if len(hits) >= 4096:
                    hits.clear()
                segment = hits[hit] = Segment(hit, True)
            append(segment)
        if rest:
            append(Segment(rest))
    return out


def _plain_snippet(body: str | None) -> list[Segment]:
    text_ = " ".join((body or "")[: _SNIPPET_CHARS * 2].split())[:_SNIPPET_CHARS]
    return [Segment(text_)] if text_ else []


_PG_HEADLINE_CFG = (
    "CAST(CASE d.lang "
    + " ".join(f"WHEN '{code}' THEN '{cfg}'" for code, cfg in sorted(PG_CONFIGS.items()))
    + f" ELSE '{DEFAULT_CONFIG}' END AS regconfig)"
)
_PG_HEADLINE_OPTS = (
    'StartSel="\x02", StopSel="\x03", MaxWords=30, MinWords=12, MaxFragments=2, '
    'FragmentDelimiter=" … "'
)


#: The columns of a page's row (``search_docs``' and the sort key), in the statements' order
_ROW: Final = ("doc_no", "voxel_id", "ts_unix", "label", "grp", "lang", "kind", "size", "name")
#: SQLAlchemy's own pattern of a named parameter in ``text()`` (``:name``, never ``::type``)
_BIND: Final = re.compile(r"(?<![:\w\x5c]):(\w+)(?!:)", re.UNICODE)


@functools.lru_cache(maxsize=1024)
def _pyformat(sql: str) -> str:
    """``sql``'s ``:name`` parameters as psycopg's ``%(name)s`` (a literal ``%`` doubled).

    As SQLAlchemy's ``text()`` compiles them for psycopg.
    """
    return _BIND.sub(r"%(\1)s", sql.replace("%", "%%"))


class _Rows:
    """Runs a search's statements on its connection's DBAPI cursor: the rows as tuples.

    SQLAlchemy Core's execution of a ``text()`` statement (cache key, execution context,
    parameter processing, result wrapping) cost 60-80 µs per statement, four to five per
    search -- a tenth of a 3 ms search, where the raw query pays it twice. The statements are
    the same SQL with the same bound values (``:name`` rewritten for psycopg as ``text()``
    does); the connection still comes from the engine's pool, and a driver error is a
    :class:`BackendError` as any other (a lost connection invalidated first, as SQLAlchemy
    would). Only values the driver returns as they are (text, integers, floats, arrays) are
    read this way, as :class:`~thunderline.voxel.db.DriverQuery` does.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.error: type[Exception] = conn.dialect.loaded_dbapi.Error

    def __call__(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        dbapi: Any = self.conn.connection.dbapi_connection
        cursor = dbapi.cursor()
        try:
            cursor.execute(_pyformat(sql) if self.pg else sql, params or {})
            return list(cursor.fetchall())
        except self.error as exc:
            if self.conn.dialect.is_disconnect(cast(Any, exc), dbapi, cursor):
                self.conn.invalidate(exc)
            raise BackendError(f"search failed: {exc}") from exc
        finally:
            cursor.close()


def _with_details(run: _Rows, page: Sequence[tuple[int, float]]) -> list[dict[str, Any]]:
    """The page's ``(doc_no, sort_key)`` pairs, in order, with their ``search_docs`` columns.

    One statement for the page; a row gone from ``search_docs`` (deleted meanwhile) is left out.
    (Joined to the page's statement instead, it cost as much in SQLite: the page is then a
    materialized subquery.)
    """
    if not page:
        return []
    nums = ", ".join(str(n) for n, _ in page)  # integers read from the database
    details = {
        int(r[0]): r
        for r in run(f"SELECT {', '.join(_ROW)} FROM search_docs WHERE doc_no IN ({nums})")
    }
    return [
        {**dict(zip(_ROW, details[n], strict=True)), "sort_key": key}
        for n, key in page
        if n in details
    ]


def _listed(numbers: Sequence[int], *, scan: bool) -> str:
    """SQLite: a condition keeping the FTS5 rows ``numbers`` (integers read from the database).

    ``scan``: ``+rowid IN (...)``, tested on the rows the MATCH yields, in one pass over its
    doclists between the smallest and the largest number (a range FTS5 is given) -- for a
    page ranked by FTS5 alone, whose statement already passed over every match (with a
    ``bm25`` per row, dearer than this pass). Else ``rowid IN (...)``, which FTS5 takes as
    one lookup per number, each parsing the expression and seeking every segment anew: 1.8
    ms for the snippets of a 20-hit page of a word at 100k documents, against 0.7 ms for the
    pass; but a page cut in time order or by a selective filter may not have passed over
    every match, and a pass over a very common word could then cost more than the lookups.
    """
    listed = ", ".join(str(n) for n in numbers)
    if not scan:
        return f"rowid IN ({listed})"
    low, high = min(numbers), max(numbers)
    return f"rowid BETWEEN {low} AND {high} AND +rowid IN ({listed})"


def _page_statement(
    plan: _Plan,
    by_rank: bool,
    after: tuple[float, int] | None,
    limit: int,
    pg: bool,
    *,
    fts: bool = False,
    langs: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The statement of a page (``limit + 1`` rows after the cursor ``after``) and its values.

    ``fts`` (SQLite, words only, ranked): FTS5 ranks and cuts the page alone, the rows are
    ``(doc_no, sort_key)``; else the rows are :data:`_ROW` and ``sort_key`` and, with
    ``langs`` (PostgreSQL), the index's languages last (an array, the same in every row).
    """
    key_expr = plan.rank if by_rank and plan.rank else "d.ts_unix"
    params = dict(plan.params)
    outer_where = "1 = 1"
    if after is not None:
        params["ck"], params["cn"] = after
        ck = "CAST(:ck AS real)" if by_rank and pg else ":ck"
        if by_rank:  # score descending, doc_no ascending
            outer_where = f"(s.sort_key < {ck} OR (s.sort_key = {ck} AND s.doc_no > :cn))"
        else:
            outer_where = f"(s.sort_key < {ck} OR (s.sort_key = {ck} AND s.doc_no < :cn))"
    order_sql = "s.sort_key DESC, s.doc_no ASC" if by_rank else "s.sort_key DESC, s.doc_no DESC"
    params["lim"] = limit + 1
    if fts:
        inner = (
            f"SELECT search_fts.rowid AS doc_no, {plan.rank} AS sort_key FROM search_fts "
            f"WHERE search_fts MATCH {plan.match_param}"
        )
    elif pg:
        # every match sorted as (doc_no, sort_key) alone, the page's other columns joined
        # to its rows after the cut: a sort of narrow rows, 0.2-0.4 ms less than sorting
        # every match with its name, voxel id and labels (20k documents, words and phrases)
        inner = (
            f"SELECT d.doc_no AS doc_no, {key_expr} AS sort_key FROM {plan.from_} "
            f"WHERE {plan.where}"
        )
        page = f"SELECT * FROM ({inner}) s WHERE {outer_where} ORDER BY {order_sql} LIMIT :lim"
        columns = ", ".join(f"d.{c}" if c != "doc_no" else "p.doc_no" for c in _ROW)
        languages = f", {languages_array()} AS langs" if langs else ""
        sql = (
            f"SELECT {columns}, p.sort_key{languages} FROM ({page}) p "
            f"JOIN search_docs d ON d.doc_no = p.doc_no ORDER BY {order_sql.replace('s.', 'p.')}"
        )
        return sql, params
    else:
        inner = (
            "SELECT d.doc_no AS doc_no, d.voxel_id AS voxel_id, d.ts_unix AS ts_unix, "
            "d.label AS label, d.grp AS grp, d.lang AS lang, d.kind AS kind, d.size AS size, "
            f"d.name AS name, {key_expr} AS sort_key FROM {plan.from_} WHERE {plan.where}"
        )
    sql = f"SELECT * FROM ({inner}) s WHERE {outer_where} ORDER BY {order_sql} LIMIT :lim"
    return sql, params


#: The index's languages the last search with words found, per database (its URL): on
#: PostgreSQL the next search's guess (see :meth:`Searcher._search`; a plain dict: each value
#: is replaced whole, which the GIL keeps atomic)
_KNOWN_LANGS: dict[str, list[str]] = {}


# ---- the searcher --------------------------------------------------------------------------
class Searcher:
    """Search over the index of one voxel database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._langs_key = engine.url.render_as_string(hide_password=True)

    def _connect(self) -> Connection:
        """A connection for one search's reads.

        On PostgreSQL in autocommit: each statement is its own transaction, as under READ
        COMMITTED anyway (a search's statements never shared a snapshot), without the
        ``BEGIN`` and the ``ROLLBACK`` of the pool's reset -- two round trips -- and the
        ``ROLLBACK`` no longer makes psycopg drop the connection's prepared statements, so the
        search's statements, the same text for every query of a form, stay prepared and are
        not planned again on every search.
        """
        conn = self.engine.connect()
        if self.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def _langs(self, tree: Node | None, conn: Any = None) -> list[str]:
        """The languages of the index, when the query has words to stem (else none).

        ``conn``: read them on this connection (the query's own: no second pool checkout).
        """
        if tree is None or not has_text(tree):
            return []
        if conn is not None:
            return [str(r[0]) for r in _Rows(conn)(languages_statement())]
        try:
            with self.engine.connect() as own:
                return [str(r[0]) for r in _Rows(own)(languages_statement())]
        except SQLAlchemyError as exc:
            raise BackendError(f"search failed: {exc}") from exc

    def search(
        self,
        query: str,
        *,
        order: Order = "relevance",
        limit: int = 20,
        cursor: str | None = None,
        facets: bool = False,
        snippets: bool = True,
    ) -> SearchResult:
        """One page of hits for ``query`` (and, with ``facets``, counts over all matches).

        Raises:
            QuerySyntaxError: the query (or the cursor) is malformed.
            BackendError: the database failed.
        """
        if order not in ("relevance", "time"):
            raise QuerySyntaxError(f"unknown order {excerpt(order)} (relevance or time)", 0, query)
        limit = max(1, min(int(limit), MAX_LIMIT))
        tree = _parsed(query)
        try:  # one connection for the whole search (a checkout is a round trip)
            with self._connect() as conn:
                return self._search(conn, query, tree, order, limit, cursor, facets, snippets)
        except SQLAlchemyError as exc:
            raise BackendError(f"search failed: {exc}") from exc

    def _search(
        self,
        conn: Any,
        query: str,
        tree: Node | None,
        order: Order,
        limit: int,
        cursor: str | None,
        facets: bool,
        snippets: bool,
    ) -> SearchResult:
        """:meth:`search` on the connection ``conn`` (errors are the caller's to wrap).

        The languages of the index are read for every search with words, never cached: on
        SQLite in a statement of their own (a skip scan: tens of µs on the driver's cursor);
        on PostgreSQL in the page's own statement (a round trip fewer), which is compiled
        with the languages the last search found and run again, compiled with those read,
        should they differ -- or read apart if it returned no row. The plan is cached per
        (query, languages) (:func:`_cached_plan`), so a stale guess never outlives the
        search that read the languages.
        """
        run = _Rows(conn)
        ranked = conn if order == "relevance" else None  # read the words' variants
        words = tree is not None and has_text(tree)
        pg = self.dialect == "postgresql"
        guess = _KNOWN_LANGS.get(self._langs_key) if pg and words and not facets else None
        langs = guess if guess is not None else self._langs(tree, conn)
        if words:
            _KNOWN_LANGS[self._langs_key] = langs
        plan = _cached_plan(self._langs_key, self.dialect, query, tree, langs, ranked)
        by_rank = order == "relevance" and plan.rank is not None
        effective: Order = "relevance" if by_rank else "time"
        after: tuple[float, int] | None = None
        if cursor:
            after = decode_cursor(cursor, query, effective)
        everything = plan.where == "1 = 1" and plan.from_ == "search_docs d"
        result = SearchResult(query, effective, [], None)
        numbers: Any = None
        rows: list[dict[str, Any]]
        if facets and not everything:
            # every match is read for the facets anyway: with its sort key, the page
            # is cut from the same read (one pass over the matches, not two)
            key_expr = plan.rank if by_rank and plan.rank else "d.ts_unix"
            rows, numbers = self._page_of_all(run, plan, key_expr, by_rank, after, limit)
        elif by_rank and plan.text_only:
            # words only, on SQLite: FTS5 ranks and cuts the page by itself, search_docs is
            # read for the page's rows only (not joined to every match before the sort)
            sql, params = _page_statement(plan, by_rank, after, limit, pg, fts=True)
            rows = _with_details(run, [(int(n), float(k)) for n, k in run(sql, params)])
        else:
            sql, params = _page_statement(plan, by_rank, after, limit, pg, langs=guess is not None)
            got = run(sql, params)
            if guess is not None:  # the languages read in the same statement (or apart)
                langs = [str(x) for x in got[0][-1]] if got else self._langs(tree, conn)
                _KNOWN_LANGS[self._langs_key] = langs
                if langs != guess:  # compiled for other languages: again, with these
                    # (the order is the same: whether a plan ranks depends on its tree alone)
                    plan = _cached_plan(self._langs_key, self.dialect, query, tree, langs, ranked)
                    sql, params = _page_statement(plan, by_rank, after, limit, pg)
                    got = run(sql, params)
            rows = [dict(zip((*_ROW, "sort_key"), r[:10], strict=True)) for r in got]
        more = len(rows) > limit
        rows = rows[:limit]
        page_numbers = [int(r["doc_no"]) for r in rows]
        # ranked by FTS5 alone (the page or the facets' read): every match was passed over
        scan = by_rank and plan.text_only
        marks = self._snippets(run, plan, page_numbers, snippets, scan=scan)
        if facets:
            result.total, result.facets, result.facet_basis = self._facets(conn, plan, numbers)
        hits = result.hits
        for row in rows:
            hits.append(
                Hit(
                    voxel_id=str(row["voxel_id"]),
                    name=str(row["name"]),
                    label=row["label"],
                    group=row["grp"],
                    lang=row["lang"],
                    kind=row["kind"],
                    size=int(row["size"]),
                    ts=datetime.fromtimestamp(float(row["ts_unix"]), UTC),
                    score=float(row["sort_key"]) if by_rank else None,
                    snippet=marks.get(int(row["doc_no"]), []),
                )
            )
        if more and rows:
            last = rows[-1]
            result.next_cursor = encode_cursor(
                query, effective, float(last["sort_key"]), int(last["doc_no"])
            )
        return result

    def _snippets(
        self, run: _Rows, plan: _Plan, numbers: list[int], wanted: bool, *, scan: bool = False
    ) -> dict[int, list[Segment]]:
        """The snippets of the page's rows (``scan``: see :func:`_listed`)."""
        if not numbers or not wanted:
            return {}
        nums = ", ".join(str(n) for n in numbers)  # integers read from the database
        out: dict[int, list[Segment]] = {}
        if self.dialect == "postgresql":
            if plan.tsquery is not None:
                # the numbers as one array parameter: the statement's text is the same for
                # every page of a query form, so psycopg keeps it prepared (not planned again)
                sql = (
                    f"SELECT d.doc_no, ts_headline({_PG_HEADLINE_CFG}, "
                    f"left(coalesce(d.body, ''), {_PG_HEADLINE_CHARS}), qq.q, "
                    f"'{_PG_HEADLINE_OPTS}') FROM search_docs d "
                    f"CROSS JOIN (SELECT {plan.tsquery} AS q) qq "
                    "WHERE d.doc_no = ANY(CAST(:page_nos AS bigint[]))"
                )
                for number, marked in run(sql, {**plan.params, "page_nos": int_array(numbers)}):
                    out[int(number)] = segments(marked or "")
                    if not any(s.match for s in out[int(number)]):
                        out[int(number)] = out[int(number)][:1]
                return out
            sql = f"SELECT doc_no, left(body, {_SNIPPET_CHARS * 2}) FROM search_docs d "
            sql += f"WHERE doc_no IN ({nums})"
            return {int(n): _plain_snippet(b) for n, b in run(sql)}
        if plan.match_param is not None:
            # one statement for the page, the rows of the MATCH kept by _listed(): FTS5
            # builds a snippet for the listed rows only (0.8 ms for 20 hits of a word in 10k
            # documents, against 16 ms for 20 statements of one hit each)
            body = (
                "SELECT rowid, snippet(search_fts, 1, char(2), char(3), ' … ', 24) "
                f"FROM search_fts WHERE search_fts MATCH {plan.match_param} AND {_listed(numbers, scan=scan)}"
            )
            for number, marked in run(body, plan.params):
                out[int(number)] = segments(marked or "")
            elsewhere = [n for n in numbers if not any(s.match for s in out.get(n, []))]
            if elsewhere:  # the hit is in the name, entities or labels: the best column
                best = (
                    "SELECT rowid, snippet(search_fts, -1, char(2), char(3), ' … ', 24), "
                    "body, highlight(search_fts, 4, char(2), char(3)) "
                    f"FROM search_fts WHERE search_fts MATCH {plan.match_param} "
                    f"AND {_listed(elsewhere, scan=scan)}"
                )
                for number, marked, body_, stems in run(best, plan.params):
                    if stems and "\x02" in stems:  # matched by its language's stems: the
                        marked = body_snippet(body_ or "", stems) or marked  # body's words
                    if marked and "\x02" in marked:
                        out[int(number)] = segments(marked)
            return out
        sql = f"SELECT rowid, substr(body, 1, {_SNIPPET_CHARS * 2}) FROM search_fts "
        sql += f"WHERE rowid IN ({nums})"
        return {int(n): _plain_snippet(b) for n, b in run(sql)}

    def _page_of_all(
        self,
        run: _Rows,
        plan: _Plan,
        key_expr: str,
        by_rank: bool,
        after: tuple[float, int] | None,
        limit: int,
    ) -> tuple[list[Any], NDArray[np.int64]]:
        """The page and every match's ``doc_no``, from one read of the matches.

        Every match is read with its sort key; the page (``limit + 1`` rows after the cursor)
        is cut from them in the order of the SQL path -- key descending, ties by ``doc_no``.
        """
        if plan.text_only and by_rank:  # SQLite words only: FTS5 alone, no search_docs join
            sql = f"SELECT rowid, {plan.rank} FROM search_fts WHERE search_fts MATCH {plan.match_param}"
        else:
            sql = f"SELECT d.doc_no, {key_expr} FROM {plan.from_} WHERE {plan.where}"
        pairs = run(sql, plan.params)
        numbers = np.fromiter((int(p[0]) for p in pairs), dtype=np.int64, count=len(pairs))
        keys = np.fromiter((float(p[1]) for p in pairs), dtype=np.float64, count=len(pairs))
        # ties by doc_no: ascending under relevance, descending under time (as the SQL)
        tie = numbers if by_rank else -numbers
        idx = np.arange(len(numbers))
        if after is not None:
            ck, cn = after
            later = (keys < ck) | ((keys == ck) & (tie > (cn if by_rank else -cn)))
            idx = np.flatnonzero(later)
        want = limit + 1
        if len(idx) > want:  # the best `want` and every row tied with the last of them
            floor = -np.partition(-keys[idx], want - 1)[want - 1]
            idx = idx[keys[idx] >= floor]
        top = idx[np.lexsort((tie[idx], -keys[idx]))][:want]
        if not len(top):
            return [], numbers
        return _with_details(run, [(int(numbers[i]), float(keys[i])) for i in top]), numbers

    def _facets(
        self, conn: Any, plan: _Plan, numbers: NDArray[np.int64] | None
    ) -> tuple[int, dict[str, list[FacetValue]], int]:
        """The exact total and every facet counted over ALL matches, and how many were counted.

        ``numbers`` are the matches' ``doc_no`` (None: every indexed document); their facet
        values come from the in-process :class:`~thunderline.search.facets.FacetCache` (a
        ``bincount`` per facet, no row read per match). The basis is the total less any match
        deleted between the two reads.
        """
        cache = facet_cache_for(self.engine)
        if numbers is None:  # every indexed document
            rows = conn.execute(text("SELECT doc_no FROM search_docs")).scalars()
            numbers = np.fromiter((int(n) for n in rows), dtype=np.int64)
        with cache.lock:
            pos = cache.current(conn, numbers)
            counted = cache.count(pos, FACET_LIMIT)
        facets = {
            name: [FacetValue(c.value, c.count) for c in counted.get(name, [])] for name in FACETS
        }
        return len(numbers), facets, len(pos)

    def iter_matches(self, query: str, *, batch: int = 1000) -> Iterator[list[str]]:
        """The voxel ids matching ``query`` in ``doc_no`` order, ``batch`` at a time.

        This is for export: keyset paging, so memory stays flat however many match.
        """
        tree = parse(query)
        plan = _plan(self.dialect, tree, self._langs(tree))
        last = 0
        while True:
            sql = (
                f"SELECT d.doc_no, d.voxel_id FROM {plan.from_} WHERE {plan.where} "
                f"AND d.doc_no > :after ORDER BY d.doc_no LIMIT {int(batch)}"
            )
            try:
                with self.engine.connect() as conn:
                    rows = list(conn.execute(text(sql), {**plan.params, "after": last}))
            except SQLAlchemyError as exc:
                raise BackendError(f"search failed: {exc}") from exc
            if not rows:
                return
            yield [str(r[1]) for r in rows]
            if len(rows) < batch:
                return
            last = int(rows[-1][0])
