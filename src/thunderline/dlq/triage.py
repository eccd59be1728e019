"""DLQ triage: which records a replay sends, and the age a purge is given in.

A record is **retryable** when its error type says so (``retryable`` of the
:mod:`thunderline.errors` class, recorded when the record was built; for older records derived
from the stored type name through :func:`thunderline.errors.retryable_by_name`), **permanent**
when the type says it is not, **unknown** when the registry does not know the type. A replay
sends retryable records only, unless forced (``--all`` / ``?all=true``); a record without an
original event can never be sent. :func:`choose` makes that selection once, for the CLI, the
API and the console, and says why each skipped record was left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from thunderline.dlq.record import Subject
from thunderline.errors import ThunderlineError
from thunderline.outcomes import OutcomeRecord

#: Why a record is not sent, by cause (the wording the CLI and the API show).
SKIP_PERMANENT = "permanent"
SKIP_UNKNOWN = "unknown error type"
SKIP_NO_EVENT = "no original event"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


class NotRetryableError(ThunderlineError):
    """A replay of a permanent record (or one of unknown error type) was asked for unforced.

    Without ``force`` it is refused: it would fail the same way.
    """

    reason = "not_retryable"

    def __init__(self, record: OutcomeRecord) -> None:
        super().__init__(
            f"DLQ record {record.short_id} is {record.permanence} (reason "
            f"{record.reason or '?'}): a replay would fail the same way; force it with "
            "all=true (CLI: --all)",
            details={"dlq_id": record.id, "permanence": record.permanence},
        )
        self.record = record


@dataclass
class Selection:
    """The records a replay sends, and those it leaves out with the reason."""

    send: list[OutcomeRecord] = field(default_factory=list)
    skipped: dict[str, list[OutcomeRecord]] = field(default_factory=dict)

    @property
    def skipped_count(self) -> int:
        """How many records were left out."""
        return sum(len(found) for found in self.skipped.values())

    def skipped_summary(self) -> dict[str, int]:
        """How many were left out per reason."""
        return {why: len(found) for why, found in self.skipped.items() if found}

    def describe_skipped(self, *, forced: bool) -> str:
        """One line for people: ``skipped 3 (2 permanent, 1 no original event); --all ...``."""
        if not self.skipped_count:
            return ""
        parts = ", ".join(f"{n} {why}" for why, n in self.skipped_summary().items())
        hint = (
            ""
            if forced or set(self.skipped_summary()) == {SKIP_NO_EVENT}
            else "; --all sends permanent and unknown ones too"
        )
        return f"skipped {self.skipped_count} ({parts}){hint}"


def can_send(record: OutcomeRecord) -> bool:
    """Whether the record holds an original event a replay could send."""
    return Subject.of(record.event).original is not None


def choose(records: Iterable[OutcomeRecord], *, force: bool = False) -> Selection:
    """Split ``records`` into those a replay sends and those it skips, by reason.

    A replay sends the retryable ones; with ``force`` every one that holds an original event.
    """
    chosen = Selection()
    for record in records:
        if not can_send(record):
            why: str | None = SKIP_NO_EVENT
        elif force or record.retryable is True:
            why = None
        else:
            why = SKIP_PERMANENT if record.retryable is False else SKIP_UNKNOWN
        if why is None:
            chosen.send.append(record)
        else:
            chosen.skipped.setdefault(why, []).append(record)
    return chosen


def parse_duration(text: str) -> float:
    """Seconds of a duration as people write it: ``90s``, ``15m``, ``12h``, ``30d``, ``2w``.

    Raises:
        ValueError: ``text`` is not a number followed by one of s, m, h, d, w.
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(
            f"duration {text!r} is not a number and a unit (s, m, h, d or w), e.g. 30d or 12h"
        )
    return float(match.group(1)) * _UNITS[match.group(2).lower()]
