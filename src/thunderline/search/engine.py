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
  of every ``lang:`` filter, combined with ``&&`` / ``||`` / ``!!``; ranked by ``ts_rank_cd``.

Words inside OR/NOT with field filters (``python OR label:pdf``) are compiled leaf by leaf
(``doc_no IN (... MATCH ...)`` / ``tsv @@ ...``); such a query is ordered by time.

Paging is by keyset -- (score, doc_no) or (time, doc_no) -- in an opaque cursor bound to the
query and the order, so a page never repeats or skips a row that was there when paging began.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from thunderline.errors import BackendError
from thunderline.search.document import norm
from thunderline.search.index import DEFAULT_CONFIG, PG_CONFIGS, pg_config
from thunderline.search.query import (
    And,
    Field,
    Node,
    Not,
    Or,
    QuerySyntaxError,
    Words,
    field_values,
    has_field,
    has_text,
    parse,
)

Order = Literal["relevance", "time"]
MAX_LIMIT: Final = 200
FACET_LIMIT: Final = 15
#: Facet counts are made over the best this many matches (in the result's order); the total
#: is always exact. Keeps a faceted query's cost flat however many documents match.
FACET_SCAN: Final = 1000
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
    then how many of the best matches the facet counts were made over.
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
    def __init__(self, dialect: str, tree: Node | None) -> None:
        self.pg = dialect == "postgresql"
        self.params: dict[str, Any] = {}
        configs = ["simple", DEFAULT_CONFIG]
        for lang in field_values(tree, "lang"):
            configs.append(pg_config(str(lang)))
        self.configs = list(dict.fromkeys(configs))

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    # -- full text, native --
    def fts(self, node: Node) -> str | None:
        """An FTS5 MATCH expression for a words-only tree (None: not expressible)."""
        if isinstance(node, Words):
            phrase = " ".join(node.tokens).replace('"', '""')
            return f'"{phrase}"' + (" *" if node.prefix else "")
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
                return f"to_tsquery('simple', {self.bind(lexemes + ':*')})"
            function = "plainto_tsquery" if len(node.tokens) == 1 else "phraseto_tsquery"
            value = self.bind(" ".join(node.tokens))
            return "(" + " || ".join(f"{function}('{c}', {value})" for c in self.configs) + ")"
        if isinstance(node, Not):
            return f"(!! {self.tsq(node.child)})"
        if isinstance(node, And | Or):
            glue = " && " if isinstance(node, And) else " || "
            return "(" + glue.join(self.tsq(c) for c in node.children) + ")"
        raise AssertionError("fields are not full text")  # pragma: no cover

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


def _plan(dialect: str, tree: Node | None) -> _Plan:
    comp = _Compiler(dialect, tree)
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
                tsquery = comp.tsq(text_tree)
                from_ = f"search_docs d CROSS JOIN (SELECT {tsquery} AS q) qq"
                conditions.append("d.tsv @@ qq.q")
                rank = "ts_rank_cd(d.tsv, qq.q)"
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
def segments(marked: str) -> list[Segment]:
    r"""Split text with \x02 ... \x03 around hits into segments."""
    out: list[Segment] = []
    for i, part in enumerate(marked.split("\x02")):
        if i == 0:
            if part:
                out.append(Segment(part.replace("\x03", "")))
            continue
        hit, _, rest = part.partition("\x03")
        if hit:
            out.append(Segment(hit, True))
        if rest:
            out.append(Segment(rest))
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


# ---- the searcher --------------------------------------------------------------------------
class Searcher:
    """Search over the index of one voxel database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

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
            raise QuerySyntaxError(f"unknown order {order!r} (relevance or time)", 0, query)
        limit = max(1, min(int(limit), MAX_LIMIT))
        tree = parse(query)
        plan = _plan(self.dialect, tree)
        by_rank = order == "relevance" and plan.rank is not None
        effective: Order = "relevance" if by_rank else "time"
        key_expr = plan.rank if by_rank and plan.rank else "d.ts_unix"
        inner = (
            "SELECT d.doc_no AS doc_no, d.voxel_id AS voxel_id, d.ts_unix AS ts_unix, "
            "d.label AS label, d.grp AS grp, d.lang AS lang, d.kind AS kind, d.size AS size, "
            f"d.name AS name, {key_expr} AS sort_key FROM {plan.from_} WHERE {plan.where}"
        )
        params = dict(plan.params)
        outer_where = "1 = 1"
        if cursor:
            key, number = decode_cursor(cursor, query, effective)
            params["ck"], params["cn"] = key, number
            ck = "CAST(:ck AS real)" if by_rank and self.dialect == "postgresql" else ":ck"
            if by_rank:  # score descending, doc_no ascending
                outer_where = f"(s.sort_key < {ck} OR (s.sort_key = {ck} AND s.doc_no > :cn))"
            else:
                outer_where = f"(s.sort_key < {ck} OR (s.sort_key = {ck} AND s.doc_no < :cn))"
        order_sql = "s.sort_key DESC, s.doc_no ASC" if by_rank else "s.sort_key DESC, s.doc_no DESC"
        params["lim"] = limit + 1
        sql = f"SELECT * FROM ({inner}) s WHERE {outer_where} ORDER BY {order_sql} LIMIT :lim"
        if by_rank and plan.text_only:
            # words only, on SQLite: FTS5 ranks and cuts the page by itself, search_docs is
            # read for the page's rows only (not joined to every match before the sort)
            ranked = (
                f"SELECT search_fts.rowid AS doc_no, {plan.rank} AS sort_key FROM search_fts "
                f"WHERE search_fts MATCH {plan.match_param}"
            )
            page = f"SELECT * FROM ({ranked}) s WHERE {outer_where} ORDER BY {order_sql} LIMIT :lim"
            sql = (
                "SELECT s.doc_no AS doc_no, d.voxel_id AS voxel_id, d.ts_unix AS ts_unix, "
                "d.label AS label, d.grp AS grp, d.lang AS lang, d.kind AS kind, "
                "d.size AS size, d.name AS name, s.sort_key AS sort_key "
                f"FROM ({page}) s JOIN search_docs d ON d.doc_no = s.doc_no ORDER BY {order_sql}"
            )
        try:
            with self.engine.connect() as conn:
                rows = list(conn.execute(text(sql), params).mappings())
                more = len(rows) > limit
                rows = rows[:limit]
                marks = self._snippets(conn, plan, [int(r["doc_no"]) for r in rows], snippets)
                result = SearchResult(query, effective, [], None)
                if facets:
                    result.total, result.facets = self._facets(conn, plan, key_expr, by_rank)
                    result.facet_basis = min(result.total, FACET_SCAN)
        except SQLAlchemyError as exc:
            raise BackendError(f"search failed: {exc}") from exc
        for row in rows:
            result.hits.append(
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
        self, conn: Any, plan: _Plan, numbers: list[int], wanted: bool
    ) -> dict[int, list[Segment]]:
        if not numbers or not wanted:
            return {}
        nums = ", ".join(str(n) for n in numbers)  # integers read from the database
        out: dict[int, list[Segment]] = {}
        if self.dialect == "postgresql":
            if plan.tsquery is not None:
                sql = (
                    f"SELECT d.doc_no, ts_headline({_PG_HEADLINE_CFG}, "
                    f"left(coalesce(d.body, ''), {_PG_HEADLINE_CHARS}), qq.q, "
                    f"'{_PG_HEADLINE_OPTS}') FROM search_docs d "
                    f"CROSS JOIN (SELECT {plan.tsquery} AS q) qq WHERE d.doc_no IN ({nums})"
                )
                for number, marked in conn.execute(text(sql), plan.params):
                    out[int(number)] = segments(marked or "")
                    if not any(s.match for s in out[int(number)]):
                        out[int(number)] = out[int(number)][:1]
                return out
            sql = f"SELECT doc_no, left(body, {_SNIPPET_CHARS * 2}) FROM search_docs d "
            sql += f"WHERE doc_no IN ({nums})"
            return {int(n): _plain_snippet(b) for n, b in conn.execute(text(sql))}
        if plan.match_param is not None:
            # one statement for the page: with "rowid IN (...)" FTS5 walks the expression's
            # matches but builds a snippet for the listed rows only (0.8 ms for 20 hits of a
            # word in 10k documents, against 16 ms for 20 statements of one hit each)
            body = text(
                "SELECT rowid, snippet(search_fts, 1, char(2), char(3), ' … ', 24) "
                f"FROM search_fts WHERE search_fts MATCH {plan.match_param} AND rowid IN ({nums})"
            )
            for number, marked in conn.execute(body, plan.params):
                out[int(number)] = segments(marked or "")
            elsewhere = [n for n in numbers if not any(s.match for s in out.get(n, []))]
            if elsewhere:  # the hit is in the name, entities or labels: the best column
                best = text(
                    "SELECT rowid, snippet(search_fts, -1, char(2), char(3), ' … ', 24) "
                    f"FROM search_fts WHERE search_fts MATCH {plan.match_param} "
                    f"AND rowid IN ({', '.join(str(n) for n in elsewhere)})"
                )
                for number, marked in conn.execute(best, plan.params):
                    if marked and "\x02" in marked:
                        out[int(number)] = segments(marked)
            return out
        sql = f"SELECT rowid, substr(body, 1, {_SNIPPET_CHARS * 2}) FROM search_fts "
        sql += f"WHERE rowid IN ({nums})"
        return {int(n): _plain_snippet(b) for n, b in conn.execute(text(sql))}

    def _facets(
        self, conn: Any, plan: _Plan, key_expr: str, by_rank: bool
    ) -> tuple[int, dict[str, list[FacetValue]]]:
        """The exact total, and every facet counted over the best :data:`FACET_SCAN` matches.

        The facets take ONE statement: that set of matches is evaluated once (a materialised
        CTE), then grouped per facet.
        """
        if plan.text_only:  # SQLite words only: FTS5 counts and ranks without search_docs
            count_sql = f"SELECT count(*) FROM search_fts WHERE search_fts MATCH {plan.match_param}"
        else:
            count_sql = f"SELECT count(*) FROM {plan.from_} WHERE {plan.where}"
        total = int(conn.execute(text(count_sql), plan.params).scalar_one())
        parts: list[str] = []
        # SQLite: CROSS JOIN keeps the match set outermost -- each matching document's terms
        # by primary key, instead of every term of the field probed against the set (3.5x)
        join = "CROSS JOIN" if self.dialect == "sqlite" else "JOIN"
        for name, (column, term) in FACETS.items():
            if column is not None:
                inner = (
                    f"SELECT '{name}' AS f, m.{column} AS v, count(*) AS n FROM m "
                    f"WHERE m.{column} IS NOT NULL GROUP BY m.{column} "
                    f"ORDER BY n DESC, v LIMIT {FACET_LIMIT}"
                )
            else:
                inner = (
                    f"SELECT '{name}' AS f, min(t.shown) AS v, count(*) AS n "
                    f"FROM m {join} search_terms t ON t.doc_no = m.doc_no "
                    f"AND t.field = '{term}' GROUP BY t.value ORDER BY n DESC, v "
                    f"LIMIT {FACET_LIMIT}"
                )
            parts.append(f"SELECT * FROM ({inner}) AS facet_{len(parts)}")
        columns = (
            "d.doc_no AS doc_no, d.label AS label, d.grp AS grp, d.lang AS lang, d.kind AS kind"
        )
        order = "DESC, d.doc_no ASC" if by_rank else "DESC, d.doc_no DESC"
        if plan.text_only and by_rank:
            best = (
                f"SELECT search_fts.rowid AS doc_no, {plan.rank} AS k FROM search_fts "
                f"WHERE search_fts MATCH {plan.match_param} ORDER BY k DESC LIMIT {FACET_SCAN}"
            )
            scope = f"SELECT {columns} FROM ({best}) b JOIN search_docs d ON d.doc_no = b.doc_no"
        else:
            scope = (
                f"SELECT {columns} FROM {plan.from_} WHERE {plan.where} "
                f"ORDER BY {key_expr} {order} LIMIT {FACET_SCAN}"
            )
        sql = f"WITH m AS MATERIALIZED ({scope}) " + " UNION ALL ".join(parts)
        facets: dict[str, list[FacetValue]] = {name: [] for name in FACETS}
        for f, v, n in conn.execute(text(sql), plan.params):
            facets[str(f)].append(FacetValue(str(v), int(n)))
        for values in facets.values():
            values.sort(key=lambda fv: (-fv.count, fv.value))
        return total, facets

    def iter_matches(self, query: str, *, batch: int = 1000) -> Iterator[list[str]]:
        """The voxel ids matching ``query`` in ``doc_no`` order, ``batch`` at a time.

        This is for export: keyset paging, so memory stays flat however many match.
        """
        plan = _plan(self.dialect, parse(query))
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
