"""Dead letters as the outcome store holds them: the one store of DLQ records.

The collector records every DLQ record in :class:`~thunderline.outcomes.OutcomeStore` with a
status (``open`` / ``replayed`` / ``resolved``); the CLI, the API and the console read and
claim them here. The journal (:mod:`thunderline.journal`) is a trace of what was published,
not a second store: nothing is imported from it.
"""

from __future__ import annotations

from thunderline.outcomes import OPEN, OutcomeRecord, OutcomeStore

#: The console shows at most this many records (newest first).
CONSOLE_MAX = 500


class DeadLetters:
    """The DLQ records of an outcome store (:class:`OutcomeRecord` of kind ``dlq``): pages,
    lookups and replay claims."""

    def __init__(self, outcomes: OutcomeStore) -> None:
        self.outcomes = outcomes

    def page(
        self, status: str | None, *, limit: int, cursor: str | None
    ) -> tuple[list[OutcomeRecord], str | None]:
        """Oldest first; ``cursor`` is the last id of the previous page (``None``: first);
        returns the records and the cursor of the next page (``None``: no more)."""
        found = self.outcomes.dlq(status, limit=limit + 1, cursor=cursor)
        more = len(found) > limit
        found = found[:limit]
        return found, (found[-1].id if more and found else None)

    def all(self, status: str | None = OPEN) -> list[OutcomeRecord]:
        """Every record of ``status`` (``None``: every status), oldest first."""
        out: list[OutcomeRecord] = []
        cursor: str | None = None
        while True:
            batch, cursor = self.page(status, limit=1000, cursor=cursor)
            out.extend(batch)
            if cursor is None:
                return out

    def newest(self, limit: int = CONSOLE_MAX) -> list[OutcomeRecord]:
        """The newest ``limit`` records of every status, newest first (for the console)."""
        return list(reversed(self.all(None)[-limit:]))

    def get(self, record_id: str) -> OutcomeRecord | None:
        """One record by id, or a unique prefix of 8+ characters."""
        return self.outcomes.dlq_get(record_id)

    def claim(self, record_id: str, replay_event_id: str) -> bool:
        """Claim an open record for a replay (``open`` -> ``replayed``); False when it is not
        open any more (claimed by another replay): then nothing may be sent."""
        return self.outcomes.mark_replayed(record_id, replay_event_id)

    def release(self, record_id: str) -> None:
        """Undo a claim whose replay could not be sent (the record is ``open`` again)."""
        self.outcomes.reopen(record_id)
