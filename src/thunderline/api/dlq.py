"""The dead-letter records the API lists and replays: a thin view of the outcome store.

Records live in :class:`thunderline.outcomes.OutcomeStore` (filled by the pipeline's collector;
status ``open`` / ``replayed`` / ``resolved``), the same store ``thunderline dlq`` uses, so a
replay from the console and one from the CLI claim the same record once. Journal records the
store does not have yet are imported when the service starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thunderline.events import CloudEvent
from thunderline.journal import Journal
from thunderline.outcomes import OutcomeRecord, OutcomeStore

REPLAY_SOURCE = "urn:thunderline:replay"
#: The console shows at most this many records (newest first).
CONSOLE_MAX = 500


@dataclass(frozen=True)
class DlqEntry:
    record: CloudEvent
    status: str  # open | replayed | resolved
    replay_event_id: str | None

    @classmethod
    def of(cls, outcome: OutcomeRecord) -> DlqEntry:
        return cls(outcome.event, outcome.status, outcome.replay_event_id)

    @property
    def original(self) -> CloudEvent | None:
        raw = self.record.data.get("original")
        if not isinstance(raw, dict):
            return None
        try:
            return CloudEvent.from_dict(raw)
        except Exception:
            return None

    @property
    def artifact(self) -> dict[str, Any]:
        original = self.record.data.get("original") or {}
        data = original.get("data") if isinstance(original, dict) else None
        artifact = data.get("artifact") if isinstance(data, dict) else None
        return artifact if isinstance(artifact, dict) else {}


class DlqView:
    """Dead letters of the outcome store."""

    def __init__(self, outcomes: OutcomeStore, journal: Journal | None) -> None:
        self.outcomes = outcomes
        self.journal = journal

    def import_journal(self) -> None:
        """Record journal DLQ records the store lacks (older runs, a database outage)."""
        if self.journal is None:  # submit-and-read: the workers' collector records them
            return
        self.journal.flush()
        self.outcomes.import_events(self.journal.iter_dlq())

    def page(
        self, status: str | None, *, limit: int, cursor: str | None
    ) -> tuple[list[DlqEntry], str | None]:
        """Oldest first; ``cursor`` is the last id of the previous page (``None``: first)."""
        found = self.outcomes.dlq(status, limit=limit + 1, cursor=cursor)
        more = len(found) > limit
        found = found[:limit]
        return [DlqEntry.of(r) for r in found], (found[-1].id if more and found else None)

    def newest(self, limit: int = CONSOLE_MAX) -> list[DlqEntry]:
        """The newest ``limit`` records of every status, newest first (for the console)."""
        entries: list[DlqEntry] = []
        cursor = None
        while True:
            batch, cursor = self.page(None, limit=1000, cursor=cursor)
            entries.extend(batch)
            entries = entries[-limit:]
            if cursor is None:
                break
        entries.reverse()
        return entries

    def get(self, dlq_id: str) -> DlqEntry | None:
        if len(dlq_id) < 36:
            return None
        found = self.outcomes.dlq_get(dlq_id)
        return DlqEntry.of(found) if found is not None else None

    def mark_replayed(self, dlq_id: str, replay_event_id: str) -> bool:
        """Claim an open record for a replay; False when it is not open any more."""
        return self.outcomes.mark_replayed(dlq_id, replay_event_id)

    def unmark(self, dlq_id: str) -> None:
        """Undo a claim whose replay could not be submitted."""
        self.outcomes.reopen(dlq_id)
