r"""PostgreSQL array literals (``{"a","b\"c",NULL}``) written in a few C-speed passes.

The search index's PostgreSQL write sends each column of a batch as one array parameter
(``unnest(%(name)s::text[])``). Handed a Python list, psycopg adapts it element by element
in Python (a dumper look-up, a quoting regex and an escape per element): about 12 µs per
indexed voxel, a sixth of the whole write. These functions write the same text
representation PostgreSQL's ``array_in`` parses (every element double-quoted, ``\`` and
``"`` backslash-escaped, ``NULL`` unquoted), so the server stores the same values; the
parameter is then one string, cast by the statement (``::text[]``, ``::float8[]``,
``::bigint[]``) as before.

See https://www.postgresql.org/docs/current/arrays.html#ARRAYS-IO for the syntax.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

#: Never inside a value PostgreSQL can store (``text`` holds no NUL): joins the elements so
#: the escapes run once over a whole column. A value that holds one takes the slow path,
#: where the driver refuses it as it refused the list.
_SEP: Final = "\x00"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_array(values: Sequence[str | None]) -> str:
    """The literal of a ``text[]``: every element quoted and escaped, None as ``NULL``.

    Raises:
        TypeError: an element is neither ``str`` nor None.
    """
    if not values:
        return "{}"
    try:
        joined = _SEP.join(values)  # type: ignore[arg-type]  # TypeError on a None
    except TypeError:
        joined = None
    if joined is not None and joined.count(_SEP) == len(values) - 1:
        escaped = joined.replace("\\", "\\\\").replace('"', '\\"').replace(_SEP, '","')
        return '{"' + escaped + '"}'
    parts = []
    for value in values:
        if value is None:
            parts.append("NULL")
        elif isinstance(value, str):
            parts.append(_quoted(value))
        else:
            raise TypeError(f"text array element must be str or None, not {type(value).__name__}")
    return "{" + ",".join(parts) + "}"


def _float(value: float) -> str:
    if math.isfinite(value):
        return repr(value)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def float_array(values: Sequence[float]) -> str:
    """The literal of a ``float8[]``.

    ``repr`` of each: the shortest text that reads back as the very same double (what
    psycopg sends for a float); ``NaN`` / ``Infinity`` spelt as PostgreSQL spells them.
    """
    body = ",".join(map(float.__repr__, values))
    if "n" in body:  # inf or nan (a finite repr has no 'n')
        body = ",".join(map(_float, values))
    return "{" + body + "}"


def int_array(values: Sequence[int]) -> str:
    """The literal of a ``bigint[]``.

    Raises:
        TypeError: an element is not an ``int`` (a bool or float would be stored otherwise).
    """
    if any(type(v) is not int for v in values):
        bad = next(v for v in values if type(v) is not int)
        raise TypeError(f"bigint array element must be int, not {type(bad).__name__}")
    return "{" + ",".join(map(int.__repr__, values)) + "}"
