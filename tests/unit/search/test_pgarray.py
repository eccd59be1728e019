"""PostgreSQL array literals of the search index's write: the text ``array_in`` parses."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thunderline.search.pgarray import float_array, int_array, text_array

_ELEMENT = re.compile(r'NULL|"((?:[^"\\]|\\.)*)"')


def _parse(literal: str) -> list[str | None]:
    """A minimal reader of the literals written here: quoted elements or NULL, comma-separated."""
    assert literal.startswith("{") and literal.endswith("}")
    inner = literal[1:-1]
    out: list[str | None] = []
    pos = 0
    while pos < len(inner):
        match = _ELEMENT.match(inner, pos)
        assert match is not None, literal
        out.append(None if match.group(1) is None else re.sub(r"\\(.)", r"\1", match.group(1)))
        pos = match.end()
        if pos < len(inner):
            assert inner[pos] == ","
            pos += 1
    return out


def test_every_element_is_quoted_and_escaped() -> None:
    assert text_array([]) == "{}"
    assert text_array(["a"]) == '{"a"}'
    assert text_array(['say "hi"', "back\\slash", "", "NULL"]) == (
        '{"say \\"hi\\"","back\\\\slash","","NULL"}'
    )


def test_none_is_an_unquoted_null() -> None:
    assert text_array([None, "x", None]) == '{NULL,"x",NULL}'
    assert text_array([None]) == "{NULL}"


def test_a_nul_takes_the_element_path_and_stays_in_the_value() -> None:
    # the driver refuses a NUL in text as it did in the list: the literal must keep it
    assert text_array(["a\x00b", "c"]) == '{"a\x00b","c"}'


def test_non_strings_are_refused() -> None:
    with pytest.raises(TypeError):
        text_array(["a", 1])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        int_array([1, True])
    with pytest.raises(TypeError):
        int_array([1, 2.0])  # type: ignore[list-item]


def test_numbers_are_written_as_python_reads_them_back() -> None:
    values = [1733372400.123456, 0.1, -2.5e-300, 1e22, 0.0]
    assert float_array(values) == "{" + ",".join(repr(v) for v in values) + "}"
    assert [float(v) for v in float_array(values)[1:-1].split(",")] == values
    assert float_array([float("inf"), float("-inf"), float("nan")]) == ("{Infinity,-Infinity,NaN}")
    assert int_array([0, -1, 2**62]) == f"{{0,-1,{2**62}}}"
    assert float_array([]) == int_array([]) == "{}"


@given(st.lists(st.one_of(st.none(), st.text(alphabet=st.characters(blacklist_characters="\x00")))))
def test_text_arrays_read_back_as_given(values: list[str | None]) -> None:
    assert _parse(text_array(values)) == values
