"""The local event journal under ``TL_HOME``: every published event, and the DLQ on its own.

``events.jsonl`` holds every event the pipeline published (one JSON object per line);
``dlq.jsonl`` holds the dead-letter records, which ``thunderline dlq`` lists and replays.
Later stages and tools attach by reading these files; nothing here is needed for correctness
of a run (the bus carries the events), but it is what makes a run traceable afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from thunderline.errors import ThunderlineError
from thunderline.events import CloudEvent


class Journal:
    """Append-only JSON-lines files, buffered and flushed by the pipeline's collector."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "journal"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events_path = self.dir / "events.jsonl"
        self.dlq_path = self.dir / "dlq.jsonl"
        self._events: IO[str] | None = None
        self._dlq: IO[str] | None = None

    def record(self, event: CloudEvent, encoded: bytes | None = None) -> None:
        """Append ``event`` (``encoded`` is its JSON when the caller already has it)."""
        if self._events is None:
            self._events = self.events_path.open("a", encoding="utf-8")
        line = (encoded.decode("utf-8") if encoded is not None else event.to_json()) + "\n"
        self._events.write(line)
        if event.is_dlq:
            if self._dlq is None:
                self._dlq = self.dlq_path.open("a", encoding="utf-8")
            self._dlq.write(line)

    def flush(self) -> None:
        for handle in (self._events, self._dlq):
            if handle is not None:
                handle.flush()

    def close(self) -> None:
        self.flush()
        for handle in (self._events, self._dlq):
            if handle is not None:
                handle.close()
        self._events = self._dlq = None

    def iter_dlq(self) -> Iterator[CloudEvent]:
        """Every DLQ record so far, oldest first (unreadable lines are skipped)."""
        yield from _read(self.dlq_path)

    def iter_events(self) -> Iterator[CloudEvent]:
        yield from _read(self.events_path)


def _read(path: Path) -> Iterator[CloudEvent]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield CloudEvent.from_dict(json.loads(line))
            except (ValueError, ThunderlineError):
                continue
