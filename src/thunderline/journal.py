"""The local event journal under ``TL_HOME``: every event the pipeline published.

``events.jsonl`` holds one JSON object per line. It is a trace, not a store: the outcomes and
dead letters live in the outcome store (:mod:`thunderline.dlq`), and nothing is read back from
here at run time. Tools attach by reading it; it is what makes a run traceable afterwards.

**Rotation and retention.** An event carries its stage results in full (an NLP result of a
100 KB text is over 200 KB), so the journal grows fast: about twice the payloads ingested.
When a file reaches ``max_bytes`` (``TL_JOURNAL_MAX_BYTES``, 0: never) it is renamed
``events.jsonl.1`` (``.1`` becomes ``.2`` and so on) and a new one is started; only ``keep``
rotated files (``TL_JOURNAL_KEEP``) are kept, older ones are deleted. The check runs when the
journal is flushed, so a file ends on a whole line and may pass the limit by one flush's
events. Readers (``iter_events``, ``iter_dlq``) read the rotated files too, oldest first. The
DLQ records live in the outcome store, so retention never loses a record ``dlq list`` shows.
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

    def __init__(self, home: Path, *, max_bytes: int = 0, keep: int = 4) -> None:
        self.dir = Path(home) / "journal"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events_path = self.dir / "events.jsonl"
        self.max_bytes = max_bytes
        self.keep = keep
        self._events: IO[str] | None = None

    def record(self, event: CloudEvent, encoded: bytes | None = None) -> None:
        """Append ``event`` (``encoded`` is its JSON when the caller already has it)."""
        if self._events is None:
            self._events = self.events_path.open("a", encoding="utf-8")
        self._events.write((encoded.decode() if encoded is not None else event.to_json()) + "\n")

    def flush(self) -> None:
        """Flush written events to disk and rotate the file once it passes ``max_bytes``."""
        if self._events is None:
            return
        self._events.flush()
        if self.max_bytes > 0 and self._events.tell() >= self.max_bytes:
            self._events.close()
            self._events = None
            rotate(self.events_path, self.keep)

    def close(self) -> None:
        """Flush and close the journal file (it reopens on the next write)."""
        self.flush()
        if self._events is not None:
            self._events.close()
        self._events = None

    def iter_dlq(self) -> Iterator[CloudEvent]:
        """Every DLQ record kept, oldest first."""
        return (event for event in self.iter_events() if event.is_dlq)

    def iter_events(self) -> Iterator[CloudEvent]:
        """Every event kept, oldest first (rotated files too; unreadable lines are skipped)."""
        for path in generations(self.events_path):
            yield from _read(path)


def generations(path: Path) -> list[Path]:
    """``path``'s rotated files, oldest first, then ``path`` itself (those that exist)."""
    rotated = []
    for entry in path.parent.glob(path.name + ".*"):
        suffix = entry.name[len(path.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), entry))
    found = [entry for _, entry in sorted(rotated, reverse=True)]
    return [*found, path] if path.exists() else found


def rotate(path: Path, keep: int) -> None:
    """``path`` becomes ``path.1`` (each ``.n`` becomes ``.n+1``); beyond ``keep`` deleted."""
    for number, entry in sorted(
        ((int(e.name.rsplit(".", 1)[1]), e) for e in generations(path) if e != path),
        reverse=True,
    ):
        if number >= keep:
            entry.unlink(missing_ok=True)
        else:
            entry.rename(path.with_name(f"{path.name}.{number + 1}"))
    if keep > 0 and path.exists():
        path.rename(path.with_name(f"{path.name}.1"))
    else:
        path.unlink(missing_ok=True)


def _read(path: Path) -> Iterator[CloudEvent]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                yield CloudEvent.from_dict(json.loads(line))
            except (ValueError, ThunderlineError):
                continue  # a blank or torn line
