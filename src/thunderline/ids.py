r"""Ids people can type: the short form of a UUIDv7 and the one parser of an id reference.

Voxel, event, correlation and DLQ ids are UUIDv7: their first 12 hex digits are the creation
time in milliseconds, so ids made in the same minute share a long prefix and an 8-character
prefix names nothing. The **short id** is the *random tail* instead: the last group of the
UUID, 12 hex digits (48 random bits), e.g. ``9f3c2a71be04`` for
``01a24133-5b7e-7c41-8d2e-9f3c2a71be04``. Among a million ids two share a tail with a
probability of about 0.2 %, and then the reference is reported as ambiguous, never guessed.

A reference (:func:`parse_ref`) is one of

* the full id (36 characters);
* a short id or any part of the tail, 4 to 12 hex digits, matched at the **end** of the id;
* a prefix of the id (4+ characters, hyphens allowed), matched at the **start** -- the form
  earlier versions printed.

Both ends are tried; one match resolves, more than one raises :class:`AmbiguousIdError`
naming the candidates' short ids. :func:`id_condition` is the one place that turns a reference
into SQL (``LIKE`` with ``%``/``_``/``\`` escaped, though the charset check already refuses
them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import or_

from thunderline.errors import ThunderlineError

#: Characters of a short id (the last group of a UUID).
SHORT_LEN: Final = 12
#: The fewest characters a partial reference may have.
MIN_REF: Final = 4
FULL_LEN: Final = 36
_FULL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PART = re.compile(r"^[0-9a-f-]+$")


class IdReferenceError(ThunderlineError):
    """An id reference that is malformed (too short, not hex)."""

    reason = "bad_id"


class AmbiguousIdError(ThunderlineError):
    """An id reference that matches more than one record."""

    reason = "ambiguous_id"

    def __init__(self, ref: str, candidates: list[str], *, what: str = "id") -> None:
        shown = ", ".join(f"{short(c)} ({c})" for c in candidates)
        super().__init__(
            f"{what} {ref!r} matches {len(candidates)} records: {shown}; "
            "give more characters or the full id",
            details={"ref": ref, "candidates": candidates},
        )
        self.candidates = candidates


def short(full_id: str) -> str:
    """The short id: the random tail (last 12 hex digits) of a UUID; other ids unchanged."""
    return full_id[-SHORT_LEN:] if _FULL.match(full_id) else full_id


@dataclass(frozen=True)
class IdRef:
    """A parsed reference: the full id, or a fragment to match at the start or the end."""

    text: str
    full: bool


def parse_ref(text: str, *, what: str = "id") -> IdRef:
    """Validate an id reference as typed (case and surrounding spaces ignored)."""
    ref = text.strip().lower()
    if _FULL.match(ref):
        return IdRef(ref, full=True)
    if len(ref.replace("-", "")) < MIN_REF:
        raise IdReferenceError(
            f"{what} {text!r} is too short: give the short id ({SHORT_LEN} characters), "
            f"{MIN_REF}+ characters of it, or the full id"
        )
    if not _PART.match(ref):
        raise IdReferenceError(f"{what} {text!r} is not an id (hex digits and '-')")
    return IdRef(ref, full=False)


def like_escape(text: str) -> str:
    r"""``text`` made literal inside a ``LIKE`` pattern (escape character ``\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def id_condition(column: Any, ref: IdRef) -> Any:
    """The SQL condition of ``ref`` on an id column: equality, or prefix OR suffix match."""
    if ref.full:
        return column == ref.text
    literal = like_escape(ref.text)
    return or_(
        column.like(f"{literal}%", escape="\\"),
        column.like(f"%{literal}", escape="\\"),
    )


def pick(ref: IdRef, found: list[str], *, what: str = "id") -> str | None:
    """The one id among ``found`` (query with ``limit >= 2``); None when empty; ambiguity raises."""
    unique = sorted(set(found))
    if len(unique) > 1:
        raise AmbiguousIdError(ref.text, unique, what=what)
    return unique[0] if unique else None
