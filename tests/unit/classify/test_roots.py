"""The held ingest roots: opened once (a link resolved once), reached by descriptor."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from thunderline.classify.roots import RootTable, open_root


def test_a_root_is_opened_without_following_and_a_given_link_resolved_once(
    tmp_path: Path,
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    fd, opened = open_root(tmp_path / "real")
    os.close(fd)
    assert opened == tmp_path / "real"
    fd, opened = open_root(tmp_path / "link")
    try:
        assert opened == tmp_path / "real"
        assert os.path.samestat(os.fstat(fd), os.stat(tmp_path / "real"))
    finally:
        os.close(fd)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        open_root(tmp_path / "file")


def test_a_held_root_keeps_its_folder_when_the_name_is_swapped(tmp_path: Path) -> None:
    roots = RootTable()
    root = tmp_path / "inbox"
    root.mkdir()
    (root / "x.txt").write_text("mine")
    (tmp_path / "secret").mkdir()
    held = roots.hold(root)
    root.rename(tmp_path / "away")
    root.symlink_to(tmp_path / "secret")
    found = roots.dup(root)
    assert found is not None
    same, fd = found
    try:
        assert same is held
        assert os.listdir(fd) == ["x.txt"]
        assert held.real(fd) == tmp_path / "away"  # the real path comes from the descriptor
    finally:
        os.close(fd)
    roots.release_all()
    assert roots.dup(root) is None and len(roots) == 0


def test_holding_again_reuses_the_same_folder_and_reopens_a_new_one(tmp_path: Path) -> None:
    roots = RootTable()
    root = tmp_path / "inbox"
    root.mkdir()
    first = roots.hold(root)
    assert roots.hold(root) is first
    shutil.rmtree(root)
    root.mkdir()  # made again: a new folder under the same name
    second = roots.hold(root)
    assert second is not first
    assert os.path.samestat(os.fstat(second.fd), os.stat(root))
    with pytest.raises(OSError):
        os.fstat(first.fd)  # the old descriptor was closed
    roots.release_all()


def test_at_most_limit_roots_stay_open(tmp_path: Path) -> None:
    roots = RootTable(limit=3)
    folders = [tmp_path / f"r{i}" for i in range(5)]
    for folder in folders:
        folder.mkdir()
        roots.hold(folder)
    assert len(roots) == 3
    assert roots.dup(folders[0]) is None and roots.dup(folders[1]) is None
    found = roots.dup(folders[4])
    assert found is not None
    os.close(found[1])
    roots.release_all()
