"""The search's caches: parsed queries, compiled plans, the words' variants (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from thunderline.search import engine
from thunderline.search.pgrank import Leaf, VariantCache
from thunderline.search.query import QuerySyntaxError, parse


def test_pyformat_rewrites_named_parameters_as_text_does() -> None:
    """``:name`` as psycopg's ``%(name)s`` (casts ``::type`` kept, a literal ``%`` doubled)."""
    sql = "SELECT x::text FROM t WHERE a = :p0 AND b LIKE '%s' AND c < CAST(:lim AS real)"
    assert engine._pyformat(sql) == (
        "SELECT x::text FROM t WHERE a = %(p0)s AND b LIKE '%%s' AND c < CAST(%(lim)s AS real)"
    )


def test_plans_are_cached_per_query_and_languages() -> None:
    engine.clear_caches()
    tree = parse("python guido")
    plan = engine._cached_plan("db", "sqlite", "python guido", tree, ["en"], None)
    assert engine._cached_plan("db", "sqlite", "python guido", tree, ["en"], None) is plan
    # other languages (a language indexed since): compiled again, stemmed in it too
    german = engine._cached_plan("db", "sqlite", "python guido", tree, ["de", "en"], None)
    assert german is not plan and "stems" in str(german.params)
    assert engine._cached_plan("other", "sqlite", "python guido", tree, ["en"], None) is not plan
    engine.clear_caches()
    assert engine._cached_plan("db", "sqlite", "python guido", tree, ["en"], None) is not plan


def test_parsed_queries_are_cached_but_errors_raised_every_time() -> None:
    engine.clear_caches()
    assert engine._parsed("python OR guido") is engine._parsed("python OR guido")
    for _ in range(2):
        with pytest.raises(QuerySyntaxError):
            engine._parsed("python AND")


class _Conn:
    """Answers read_variants' statement: each word's variant in each configuration."""

    def __init__(self) -> None:
        self.reads = 0

    def execute(self, statement: Any, params: dict[str, Any]) -> Any:
        self.reads += 1
        cells = str(statement).count("tsvector_to_array")
        row = tuple(x for i in range(cells) for x in ([f"w{i}"], 1, f"'w{i}'"))
        return type("Result", (), {"one": lambda _self: row})()


def test_variants_are_read_once_per_database_and_bounded() -> None:
    cache, conn = VariantCache(size=4), _Conn()
    leaves, params = [Leaf("plainto_tsquery", ":p0")], {"p0": "thread"}
    grid = cache.read("db", conn, leaves, ["english", "simple"], params)
    assert conn.reads == 1 and [v.text for v in grid[0]] == ["'w0'", "'w1'"]
    assert cache.read("db", conn, leaves, ["english", "simple"], params) == grid
    assert conn.reads == 1
    cache.read("other-db", conn, leaves, ["english", "simple"], params)
    assert conn.reads == 2
    cache.read("db", conn, leaves, ["english", "simple"], {"p0": "socket"})  # evicts
    assert conn.reads == 3
    cache.read("db", conn, leaves, ["english", "simple"], params)
    assert conn.reads == 4  # the least recently used was dropped (size 4 cells)
    cache.clear()
    cache.read("other-db", conn, leaves, ["english", "simple"], params)
    assert conn.reads == 5
