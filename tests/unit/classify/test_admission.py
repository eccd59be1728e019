"""Admission and walking: the defined behaviour for awkward paths."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from thunderline.classify import admit, iter_candidates
from thunderline.errors import (
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    NotARegularFileError,
    PathEscapeError,
    UnreadableArtifactError,
)

MB = 1024 * 1024


def test_regular_files_of_any_size_down_to_zero(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "one").write_bytes(b"x")
    assert admit(tmp_path / "empty", tmp_path, MB)[1] == 0
    assert admit(tmp_path / "one", tmp_path, MB)[1] == 1


def test_names_with_spaces_and_non_ascii(tmp_path: Path) -> None:
    path = tmp_path / "café menu — 日本.txt"
    path.write_text("menu", encoding="utf-8")
    resolved, size = admit(path, tmp_path, MB)
    assert resolved == path and size == 4


def test_directory_fifo_and_missing_are_refused(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(NotARegularFileError, match="directory"):
        admit(tmp_path / "dir", tmp_path, MB)
    with pytest.raises(NotARegularFileError, match="not a regular file"):
        admit(tmp_path / "pipe", tmp_path, MB)  # never opened: it would block
    with pytest.raises(ArtifactNotFoundError):
        admit(tmp_path / "nope", tmp_path, MB)


def test_symlinks_inside_root_ok_escape_loop_and_dangling_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "real.txt").write_text("hello")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (root / "inside").symlink_to(root / "real.txt")
    (root / "escape").symlink_to(outside)
    (root / "dotdot").symlink_to("../secret.txt")
    (root / "loop_a").symlink_to(root / "loop_b")
    (root / "loop_b").symlink_to(root / "loop_a")
    (root / "dangling").symlink_to(root / "missing")
    assert admit(root / "inside", root, MB)[0] == root / "real.txt"
    with pytest.raises(PathEscapeError, match="outside the ingest root"):
        admit(root / "escape", root, MB)
    with pytest.raises(PathEscapeError):
        admit(root / "dotdot", root, MB)
    with pytest.raises(NotARegularFileError, match="symlink loop"):
        admit(root / "loop_a", root, MB)
    with pytest.raises(ArtifactNotFoundError, match="dangling"):
        admit(root / "dangling", root, MB)


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads chmod 000 files; tests/integration covers the injected fault")
    path = tmp_path / "locked"
    path.write_text("x")
    path.chmod(0)
    with pytest.raises(UnreadableArtifactError):
        admit(path, tmp_path, MB)


def test_huge_sparse_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.bin"
    with path.open("wb") as handle:
        handle.truncate(10 * 1024**3)  # 10 GiB, sparse
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ArtifactTooLargeError) as info:
        admit(path, tmp_path, 1024**3)
    assert info.value.details == {"size": 10 * 1024**3, "limit": 1024**3}
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50 * 1024  # KiB


def test_walk_without_and_with_recursion_never_follows_dir_links(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.txt").write_text("b")
    (sub / "up").symlink_to(tmp_path)  # a loop if followed
    flat = list(iter_candidates([tmp_path]))
    assert [(c.path.name, c.skipped is None) for c in flat] == [("a.txt", True), ("sub", False)]
    deep = list(iter_candidates([tmp_path], recursive=True))
    names = [c.path.name for c in deep if c.skipped is None]
    assert names == ["a.txt", "b.txt"]
    assert any(c.path.name == "up" and c.skipped for c in deep)
    assert all(c.root == tmp_path for c in deep)


def test_a_file_argument_is_rooted_in_its_folder(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x")
    (candidate,) = iter_candidates([tmp_path / "x.txt"])
    assert candidate.root == tmp_path and candidate.skipped is None
