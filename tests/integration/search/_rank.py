"""Shared by the search tests: PostgreSQL's reduced ranking gives every match the score
``ts_rank_cd`` gives it on the full query, and the searcher returns the same pages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import text

import thunderline.search.engine as engine_module
from thunderline.search.engine import Searcher, _plan
from thunderline.search.index import indexed_languages
from thunderline.search.pgrank import FULL_RANK
from thunderline.search.query import parse
from thunderline.voxel.store import VoxelStore


def _pages(store: VoxelStore, query: str) -> list[tuple[str, float | None]]:
    """Every hit of ``query`` (pages of 2 through the cursor) with its score, in order."""
    searcher, out, cursor = Searcher(store.engine), [], None
    while True:
        page = searcher.search(query, limit=2, cursor=cursor, snippets=False)
        out += [(h.voxel_id, h.score) for h in page.hits]
        if (cursor := page.next_cursor) is None:
            return out


def assert_reduced_rank_exact(
    store: VoxelStore, queries: Sequence[str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, tuple[int, int]]:
    """For each query: every match's reduced score equals ``ts_rank_cd(d.tsv, qq.q)``, and
    the searcher's hits, scores and order are those of ranking on the full query.

    Returns (matches, matches ranked on a reduced query) per query.
    """
    counted: dict[str, tuple[int, int]] = {}
    with store.engine.connect() as conn:
        langs = indexed_languages(conn)
        for query in queries:
            plan = _plan("postgresql", parse(query), langs, conn)
            assert plan.rank is not None, query
            # the branch taken: i for the reduced query R_i, -1 for the full query
            branch = re.sub(r"ts_rank_cd\(d\.tsv, qq\.r(\d+)\)", r"\1", plan.rank)
            branch = branch.replace(FULL_RANK, "-1")
            rows: list[Any] = conn.execute(
                text(
                    f"SELECT d.doc_no, {plan.rank}, {FULL_RANK}, ({branch}) <> -1 "
                    f"FROM {plan.from_} WHERE {plan.where}"
                ),
                plan.params,
            ).all()
            assert rows, query  # a query with matches to rank
            differ = [(r[0], r[1], r[2]) for r in rows if r[1] != r[2]]
            assert not differ, (query, differ)
            counted[query] = (len(rows), sum(1 for r in rows if r[3]))
    ours = {q: _pages(store, q) for q in queries}
    monkeypatch.setattr(engine_module, "reduced_rank", lambda *a, **k: ([], FULL_RANK))
    engine_module.clear_caches()  # the plans were compiled with the reduction: again without
    full = {q: _pages(store, q) for q in queries}
    engine_module.clear_caches()  # nor may the plans compiled without it outlive the patch
    assert ours == full
    return counted
