"""The journal: every published event in events.jsonl (a trace; DLQ records read from it)."""

from __future__ import annotations

from pathlib import Path

from thunderline.dlq.record import dead_letter
from thunderline.errors import ArtifactNotFoundError
from thunderline.eventdata import Artifact
from thunderline.events import DLQ_CLASSIFY
from thunderline.journal import Journal
from thunderline.testing import ingest


def test_records_every_event_and_reads_the_dead_letters_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    start = ingest(Artifact(name="a.txt", path="/in/a.txt"))
    failed = dead_letter("classify", DLQ_CLASSIFY, ArtifactNotFoundError("gone"), original=start)
    journal.record(start)
    journal.record(failed, failed.to_bytes())
    journal.flush()
    assert [e.id for e in journal.iter_events()] == [start.id, failed.id]
    assert [e.id for e in journal.iter_dlq()] == [failed.id]
    assert sorted(p.name for p in journal.dir.iterdir()) == ["events.jsonl"]  # one file
    journal.close()
    reopened = Journal(tmp_path)  # appends, never truncates
    reopened.record(start)
    reopened.close()
    assert len(list(Journal(tmp_path).iter_events())) == 3


def test_unreadable_lines_are_skipped(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    start = ingest(Artifact(name="a.txt", path="/in/a.txt"))
    journal.record(start)
    journal.close()
    with journal.events_path.open("a", encoding="utf-8") as handle:
        handle.write('not json\n\n{"type": "no envelope"}\n')
    assert [e.id for e in journal.iter_events()] == [start.id]
    assert list(Journal(tmp_path / "empty").iter_dlq()) == []
