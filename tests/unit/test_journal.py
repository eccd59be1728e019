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


def test_rotation_keeps_whole_lines_and_only_the_newest_files(tmp_path: Path) -> None:
    events = [ingest(Artifact(name=f"f{i}.txt", path=f"/in/f{i}.txt")) for i in range(40)]
    size = len(events[0].to_json()) + 1
    journal = Journal(tmp_path, max_bytes=3 * size, keep=2)
    for event in events:
        journal.record(event)
        journal.flush()  # the collector flushes after each batch
    journal.close()
    folder = journal.dir
    names = sorted(p.name for p in folder.iterdir())
    assert {"events.jsonl.1", "events.jsonl.2"} <= set(names)  # keep=2: no .3
    assert set(names) <= {"events.jsonl", "events.jsonl.1", "events.jsonl.2"}
    for path in folder.iterdir():
        assert path.stat().st_size <= 3 * size + size  # at most one flush over the limit
        assert path.read_text(encoding="utf-8").endswith("\n")
    kept = [e.id for e in journal.iter_events()]
    assert kept == [e.id for e in events[-len(kept) :]]  # the newest, oldest first, in order
    assert 3 <= len(kept) <= 8


def test_no_rotation_by_default_and_keep_zero_deletes(tmp_path: Path) -> None:
    events = [ingest(Artifact(name=f"f{i}.txt", path=f"/in/f{i}.txt")) for i in range(10)]
    plain = Journal(tmp_path / "plain")
    for event in events:
        plain.record(event)
        plain.flush()
    plain.close()
    assert [p.name for p in plain.dir.iterdir()] == ["events.jsonl"]
    assert len(list(plain.iter_events())) == 10
    dropping = Journal(tmp_path / "drop", max_bytes=1, keep=0)
    dropping.record(events[0])
    dropping.close()
    assert list(dropping.dir.iterdir()) == [] and list(dropping.iter_events()) == []
