"""Comparing a listing with a ledger snapshot: the walk's fast path agrees with the full rule."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from thunderline import names
from thunderline.sources.ledger import Snapshot, by_folder
from thunderline.sources.scan import Seen, diff_dir, diff_listing, scan_dir

OLD = time.time() - 3600
HOUR_NS = 3600 * 1_000_000_000


def put(path: Path, text: str, mtime: float = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


def row(key: str, path: Path | None, state: str = "done", **changes: Any) -> tuple[Any, ...]:
    """A ledger row ``(id, size, mtime_ns, etag, state, key)`` as a first sync leaves it."""
    st = path.stat() if path is not None else None
    values = {
        "size": st.st_size if st else 1,
        "mtime_ns": st.st_mtime_ns if st else 1,
        "etag": None,
        **changes,
    }
    return (f"id-{key}", values["size"], values["mtime_ns"], values["etag"], state, key)


def snapshot(*rows: tuple[Any, ...]) -> Snapshot:
    folders, live = by_folder(list(rows))
    return Snapshot((0.0, 0), folders, live)


def test_an_empty_ledger_acts_on_exactly_what_scan_dir_lists(tmp_path: Path) -> None:
    put(tmp_path / "top.txt", "1")
    put(tmp_path / "a" / "b" / "deep.txt", "22")
    put(tmp_path / "a" / "c.txt", "333")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    put(outside / "secret.txt", "not a source entry")
    os.symlink(outside, tmp_path / "linked-dir")
    os.symlink(tmp_path / "top.txt", tmp_path / "linked-file")
    os.mkfifo(tmp_path / "fifo")
    diff = diff_dir(tmp_path, snapshot(), 0, time.time_ns())
    assert sorted(seen for seen, _row in diff.acting) == sorted(scan_dir(tmp_path))
    assert (diff.seen, diff.unchanged, diff.settling, diff.gone) == (3, 0, 0, [])


def test_each_kind_of_entry(tmp_path: Path) -> None:
    same = put(tmp_path / "same.txt", "same")
    edited = put(tmp_path / "d" / "edited.txt", "edited")
    pending = put(tmp_path / "d" / "pending.txt", "sent, never settled")
    back = put(tmp_path / "back.txt", "deleted, then back")
    put(tmp_path / "d" / "fresh.txt", "still being written", mtime=time.time())
    put(tmp_path / "d" / "new.txt", "new")
    rows = [
        row("same.txt", same),
        row("d/edited.txt", edited, mtime_ns=edited.stat().st_mtime_ns - 1),
        row("d/pending.txt", pending, state="submitted"),
        row("back.txt", back, state="deleted"),
        row("d/removed.txt", None),
        row("folder/gone/one.txt", None),  # a whole folder removed
        row("folder/gone/two.txt", None),
        row("long-gone.txt", None, state="deleted"),  # already recorded: not gone again
    ]
    diff = diff_dir(tmp_path, snapshot(*rows), HOUR_NS // 60, time.time_ns())
    acting = {seen.key: r[0] if r else None for seen, r in diff.acting}
    assert acting == {
        "d/edited.txt": "id-d/edited.txt",
        "d/pending.txt": "id-d/pending.txt",
        "back.txt": "id-back.txt",
        "d/new.txt": None,
    }
    assert (diff.seen, diff.unchanged, diff.settling) == (6, 1, 1)
    assert sorted(diff.gone) == [
        "id-d/removed.txt",
        "id-folder/gone/one.txt",
        "id-folder/gone/two.txt",
    ]


def test_a_submitted_entry_is_resumed_even_while_its_file_settles(tmp_path: Path) -> None:
    recent = put(tmp_path / "recent.txt", "x", mtime=time.time())
    diff = diff_dir(
        tmp_path, snapshot(row("recent.txt", recent, state="submitted")), HOUR_NS, time.time_ns()
    )
    assert [seen.key for seen, _ in diff.acting] == ["recent.txt"] and diff.settling == 0


def test_undecodable_names_match_their_stored_spelling(tmp_path: Path) -> None:
    folder = os.fsdecode(b"f\xe9")  # not UTF-8: a lone surrogate in the str
    name = os.fsdecode(b"caf\xe9.txt")
    path = put(tmp_path / folder / name, "latin-1 name")
    other = put(tmp_path / folder / "gone-sibling.txt", "x")
    stored = names.wire_text(f"{folder}/{name}")
    assert stored != f"{folder}/{name}"
    rows = [row(stored, path), row(names.wire_text(f"{folder}/gone-sibling.txt"), other)]
    diff = diff_dir(tmp_path, snapshot(*rows), 0, time.time_ns())
    other.unlink()
    assert (diff.unchanged, diff.acting, diff.gone) == (2, [], [])
    diff = diff_dir(tmp_path, snapshot(*rows), 0, time.time_ns())
    assert (diff.unchanged, diff.gone) == (1, [f"id-{names.wire_text(folder)}/gone-sibling.txt"])


def test_a_listing_with_etags(tmp_path: Path) -> None:
    rows = [
        row("a/same.txt", None, size=5, mtime_ns=10, etag="e1"),
        row("a/edited.txt", None, size=5, mtime_ns=10, etag="e2"),
        row("b/removed.txt", None, size=5, mtime_ns=10, etag="e3"),
    ]
    listing = [
        Seen("a/same.txt", 5, 99, "e1"),  # same ETag and size: a new mtime alone is no change
        Seen("a/edited.txt", 5, 10, "changed"),
        Seen("c/new.txt", 1, 10, "e4"),
    ]
    diff = diff_listing(listing, snapshot(*rows), 0, time.time_ns())
    assert [seen.key for seen, _ in diff.acting] == ["a/edited.txt", "c/new.txt"]
    assert (diff.seen, diff.unchanged, diff.gone) == (3, 1, ["id-b/removed.txt"])
