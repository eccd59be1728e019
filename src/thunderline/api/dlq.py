"""The dead-letter records the API lists and replays (the one module that knows where they live).

Records come from the journal's ``dlq.jsonl`` (newest first); the replays made through the API
are remembered in ``$TL_HOME/api/replayed.jsonl`` (DLQ id -> replay event id), so a record shows
``replayed`` after a restart too. When ``thunderline.outcomes.OutcomeStore`` is on the branch
this module reads it instead; nothing else in the API changes.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thunderline.events import CloudEvent
from thunderline.journal import Journal

REPLAY_SOURCE = "urn:thunderline:replay"


@dataclass(frozen=True)
class DlqEntry:
    record: CloudEvent
    status: str  # open | replayed
    replay_event_id: str | None

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
    """Dead letters from the journal plus the API's replay marks."""

    def __init__(self, home: Path, journal: Journal | None = None) -> None:
        self.journal = journal or Journal(home)
        self.marks_path = Path(home) / "api" / "replayed.jsonl"
        self._lock = threading.Lock()
        self._marks: dict[str, str] | None = None

    def _load_marks(self) -> dict[str, str]:
        if self._marks is None:
            marks: dict[str, str] = {}
            if self.marks_path.exists():
                for line in self.marks_path.read_text(encoding="utf-8").splitlines():
                    try:
                        raw = json.loads(line)
                        marks[str(raw["dlq_id"])] = str(raw["replay_event_id"])
                    except (ValueError, KeyError, TypeError):
                        continue
            self._marks = marks
        return self._marks

    def entries(self) -> list[DlqEntry]:
        """Every record, newest first."""
        self.journal.flush()
        marks = self._load_marks()
        out = [
            DlqEntry(r, "replayed" if r.id in marks else "open", marks.get(r.id))
            for r in self.journal.iter_dlq()
        ]
        out.reverse()
        return out

    def get(self, dlq_id: str) -> DlqEntry | None:
        for entry in self.entries():
            if entry.record.id == dlq_id:
                return entry
        return None

    def mark_replayed(self, dlq_id: str, replay_event_id: str) -> bool:
        """Remember a replay; False when the record was already replayed."""
        with self._lock:
            marks = self._load_marks()
            if dlq_id in marks:
                return False
            marks[dlq_id] = replay_event_id
            self.marks_path.parent.mkdir(parents=True, exist_ok=True)
            with self.marks_path.open("a", encoding="utf-8") as handle:
                handle.write(
                    json.dumps({"dlq_id": dlq_id, "replay_event_id": replay_event_id}) + "\n"
                )
            return True

    def unmark(self, dlq_id: str) -> None:
        """Forget a mark whose replay could not be submitted."""
        with self._lock:
            marks = self._load_marks()
            marks.pop(dlq_id, None)
            self.marks_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.marks_path.with_suffix(".tmp")
            tmp.write_text(
                "".join(
                    json.dumps({"dlq_id": k, "replay_event_id": v}) + "\n" for k, v in marks.items()
                ),
                encoding="utf-8",
            )
            tmp.replace(self.marks_path)
