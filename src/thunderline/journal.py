"""The local event journal under ``TL_HOME``: every event the pipeline published.

``events.jsonl`` holds one JSON object per line. It is a trace, not a store: the outcomes and
dead letters live in the outcome store (:mod:`thunderline.dlq`), and nothing is read back from
here at run time. Tools attach by reading it; it is what makes a run traceable afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from thunderline.errors import ThunderlineError
from thunderline.events import CloudEvent


class Journal:
    """An append-only JSON-lines file, buffered and flushed by the pipeline's collector."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "journal"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events_path = self.dir / "events.jsonl"
        self._events: IO[str] | None = None

    def record(self, event: CloudEvent, encoded: bytes | None = None) -> None:
        """Append ``event`` (``encoded`` is its JSON when the caller already has it)."""
        if self._events is None:
            self._events = self.events_path.open("a", encoding="utf-8")
        self._events.write((encoded.decode() if encoded is not None else event.to_json()) + "\n")

    def flush(self) -> None:
        if self._events is not None:
            self._events.flush()

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
        self._events = None

    def iter_dlq(self) -> Iterator[CloudEvent]:
        """Every DLQ record published so far, oldest first."""
        return (event for event in self.iter_events() if event.is_dlq)

    def iter_events(self) -> Iterator[CloudEvent]:
        """Every event so far, oldest first (unreadable lines are skipped)."""
        if not self.events_path.exists():
            return
        with self.events_path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    yield CloudEvent.from_dict(json.loads(line))
                except (ValueError, ThunderlineError):
                    continue  # a blank or torn line
