"""The reduced ranking's branches and SQL: when it applies, and what it binds (no database
here; its exactness is tested on real documents in tests/integration/search)."""

from __future__ import annotations

from typing import Any

from thunderline.search.engine import _plan
from thunderline.search.pgrank import FULL_RANK, Variant, branch_tests, reduced_rank
from thunderline.search.query import parse


def variant(text: str, *lexemes: str, nodes: int | None = None) -> Variant:
    return Variant(frozenset(lexemes), len(lexemes) if nodes is None else nodes, text)


ENCODING = [[variant("'encod'", "encod"), variant("'encoding'", "encoding")]]
THIS_MODULE = [
    [variant("'modul'", "modul"), variant("'this' <-> 'module'", "this", "module", nodes=3)]
]


def binder() -> tuple[dict[str, Any], Any]:
    params: dict[str, Any] = {}

    def bind(value: Any) -> str:
        params[f"b{len(params)}"] = value
        return f":b{len(params) - 1}"

    return params, bind


def ranked(variants: list[list[Variant]], *, word: bool) -> tuple[list[str], str, dict[str, Any]]:
    """``reduced_rank`` of ``variants`` over the trees R0 and R1: columns, rank, bound values."""
    params, bind = binder()
    columns, rank = reduced_rank(variants, ["R0", "R1"], bind, word=word)
    return columns, rank, params


#: The rank of two branches of one test each, the full query last
TWO_BRANCHES = (
    "CASE WHEN NOT (d.tsv @@ CAST(:b0 AS tsquery)) THEN ts_rank_cd(d.tsv, qq.r0) "
    "WHEN NOT (d.tsv @@ CAST(:b1 AS tsquery)) THEN ts_rank_cd(d.tsv, qq.r1) "
    f"ELSE {FULL_RANK} END"
)
BOTH_COLUMNS = ["(SELECT R0) AS r0", "(SELECT R1) AS r1"]


def test_a_configuration_qualifies_when_every_other_variant_holds_an_extra_lexeme() -> None:
    assert branch_tests(ENCODING, 0, word=False) == ("'encoding'", None)
    assert branch_tests(ENCODING, 1, word=False) == ("'encod'", None)
    # the same query in both configurations: nothing to reduce
    same = [[variant("'thread'", "thread"), variant("'thread'", "thread")]]
    assert branch_tests(same, 0, word=True) == (None, None)
    # an empty variant (stop words only) never qualifies its configuration
    stop = [[variant("", nodes=0), variant("'the'", "the")]]
    assert branch_tests(stop, 0, word=True) == (None, None)
    # another variant whose lexemes are all in R_c: it could be true, so no reduction
    subset = [[variant("'a' & 'b'", "a", "b", nodes=3), variant("'a'", "a")]]
    assert branch_tests(subset, 0, word=False) == (None, None)


def test_one_lexeme_word_ranks_alone_where_no_other_variant_can_be_true() -> None:
    assert branch_tests(THIS_MODULE, 0, word=True) == ("'module' | 'this'", "('module' & 'this')")
    assert branch_tests(THIS_MODULE, 0, word=False) == ("'module' | 'this'", None)
    # a quote or a backslash in a lexeme stays inside its quoted tsquery operand
    odd = [[variant("'it''s'", "it's"), variant("'a\\\\b'", "a\\b")]]
    assert branch_tests(odd, 0, word=True) == ("'a\\\\b'", "('a\\\\b')")


def test_branches_bind_their_tests_and_fall_back_to_the_full_query() -> None:
    columns, rank, params = ranked(THIS_MODULE, word=True)
    assert columns == BOTH_COLUMNS
    # S ('module' & 'this') implies E ('module' | 'this'): NOT E OR NOT S is NOT S alone
    assert rank == TWO_BRANCHES
    assert params == {"b0": "('module' & 'this')", "b1": "'modul'"}
    # without S (not one word) the branch keeps E
    _, rank, params = ranked(THIS_MODULE, word=False)
    assert rank.startswith("CASE WHEN NOT (d.tsv @@ CAST(:b0 AS tsquery)) THEN")
    assert params == {"b0": "'module' | 'this'", "b1": "'modul'"}
    same = [[variant("'thread'", "thread"), variant("'thread'", "thread")]]
    assert ranked(same, word=True)[:2] == ([], FULL_RANK)


def test_a_branch_tests_a_lexeme_once() -> None:
    """One word whose other variant is the one lexeme its branch lacks: E and S are the same
    test ('encoding' and ('encoding')), made once (as S, which implies E)."""
    assert branch_tests(ENCODING, 0, word=True) == ("'encoding'", "('encoding')")
    columns, rank, params = ranked(ENCODING, word=True)
    assert columns == BOTH_COLUMNS
    assert rank == TWO_BRANCHES
    assert params == {"b0": "('encoding')", "b1": "('encod')"}


def test_plan_without_a_connection_ranks_on_the_full_query() -> None:
    plan = _plan("postgresql", parse('"return value" encod* label:x'), ["en"])
    assert plan.rank == FULL_RANK
    assert "return" not in plan.from_ and "encod" not in plan.from_  # the user's text is bound
    sqlite = _plan("sqlite", parse("return value"), ["en"])
    assert sqlite.rank is not None and "ts_rank_cd" not in sqlite.rank
