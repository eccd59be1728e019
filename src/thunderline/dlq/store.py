"""Dead letters as the outcome store holds them: the one store of DLQ records.

The collector records every DLQ record in :class:`~thunderline.outcomes.OutcomeStore` with a
status (``open`` / ``replayed`` / ``resolved``); the CLI, the API and the console read and
claim them here. The journal (:mod:`thunderline.journal`) is a trace of what was published,
not a second store: nothing is imported from it.
"""

from __future__ import annotations

import time

from thunderline.outcomes import OPEN, DlqGroup, OutcomeRecord, OutcomeStore

#: The console shows at most this many records (newest first).
CONSOLE_MAX = 500


class DeadLetters:
    """The DLQ records of an outcome store: pages, lookups and replay claims.

    The records are the store's :class:`OutcomeRecord` of kind ``dlq``.
    """

    def __init__(self, outcomes: OutcomeStore) -> None:
        self.outcomes = outcomes

    def page(
        self, status: str | None, *, limit: int, cursor: str | None, group: str | None = None
    ) -> tuple[list[OutcomeRecord], str | None]:
        """One page of records, oldest first, and the cursor of the next page (``None``: no more).

        ``cursor`` is the last id of the previous page (``None``: the first page); ``group`` a
        group's full key.
        """
        found = self.outcomes.dlq(status, limit=limit + 1, cursor=cursor, group=group)
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
        """One record by full id, short id, or a unique part of either end.

        See :mod:`thunderline.ids`: ``AmbiguousIdError`` when several match.
        """
        return self.outcomes.dlq_get(record_id)

    def groups(
        self, status: str | None = OPEN, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[DlqGroup], int]:
        """Records grouped by (stage, reason, artifact), most recent first, and the group count."""
        return self.outcomes.dlq_groups(status, limit=limit, offset=offset)

    def group_key(self, ref: str) -> str | None:
        """A group's full key from its id (``AmbiguousIdError`` when several start so)."""
        return self.outcomes.resolve_group(ref)

    def of_group(self, key: str, status: str | None = OPEN) -> list[OutcomeRecord]:
        """Every record of a group (full key) of ``status``, oldest first."""
        out: list[OutcomeRecord] = []
        cursor: str | None = None
        while True:
            batch = self.outcomes.dlq(status, limit=1000, cursor=cursor, group=key)
            out.extend(batch)
            if len(batch) < 1000:
                return out
            cursor = batch[-1].id

    def dismiss(self, record_ids: list[str], *, by: str, note: str) -> list[str]:
        """Close open records without a replay (``dismissed``, with who, when and why).

        Returns the ids dismissed (records no longer open are left as they are).
        """
        return self.outcomes.dismiss(record_ids, by=by, note=note)

    def purge(self, older_than_s: float, *, dry_run: bool = False) -> dict[str, int]:
        """Delete closed records (replayed, resolved, dismissed) older than ``older_than_s`` s.

        Returns how many per status (``dry_run``: how many would be, nothing is deleted).
        """
        return self.outcomes.purge(time.time() - older_than_s, dry_run=dry_run)

    def claim(self, record_id: str, replay_event_id: str) -> bool:
        """Claim an open record for a replay (``open`` -> ``replayed``).

        False when it is not open any more (claimed by another replay): then nothing may be
        sent.
        """
        return self.outcomes.mark_replayed(record_id, replay_event_id)

    def release(self, record_id: str) -> None:
        """Undo a claim whose replay could not be sent (the record is ``open`` again)."""
        self.outcomes.reopen(record_id)
