"""Admission and walking: the defined behaviour for awkward paths."""

from __future__ import annotations

import os
import resource
import shutil
import socket
from pathlib import Path

import pytest

from thunderline.classify import admit, iter_candidates, open_input
from thunderline.errors import (
    ArtifactError,
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


def test_open_input_gives_a_descriptor_of_the_checked_file(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"abc")
    with open_input(tmp_path / "a.bin", tmp_path) as admitted:
        assert os.pread(admitted.fd, 10, 0) == b"abc"
        assert admitted.size == 3 and admitted.real_path == tmp_path / "a.bin"
        assert os.get_blocking(admitted.fd)  # O_NONBLOCK cleared before reading
    with pytest.raises(OSError):
        os.fstat(admitted.fd)  # closed


def test_a_fifo_is_refused_without_blocking_even_with_no_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(NotARegularFileError, match="not a regular file"):
        open_input(tmp_path / "pipe", tmp_path)


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(NotARegularFileError):
            open_input(path, tmp_path)


def test_a_parent_folder_that_is_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("secret")
    (root / "sub").symlink_to(outside)
    with pytest.raises(PathEscapeError, match="outside the ingest root"):
        open_input(root / "sub" / "secret", root)
    (root / "real").mkdir()
    (root / "real" / "ok.txt").write_text("ok")
    (root / "alias").symlink_to(root / "real")  # a link that stays inside is followed
    with open_input(root / "alias" / "ok.txt", root) as admitted:
        assert admitted.real_path == root / "real" / "ok.txt"


def test_a_root_given_through_a_symlink_works(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with open_input(tmp_path / "link" / "x", tmp_path / "link") as admitted:
        assert admitted.real_path == tmp_path / "real" / "x"


def test_a_path_longer_than_path_max_is_opened_component_by_component(tmp_path: Path) -> None:
    deep = _deep_folder(tmp_path, 4200)
    try:
        name = "f" * 255
        fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=deep.fd)
        os.write(fd, b"deep")
        os.close(fd)
        path = deep.path / name
        assert len(os.fsencode(path)) > 4096
        with open_input(path, tmp_path) as admitted:
            assert os.pread(admitted.fd, 10, 0) == b"deep"
    finally:
        deep.close()
        shutil.rmtree(tmp_path / ("d" * 250))  # fd-based: copes with the long path


class _Deep:
    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    def close(self) -> None:
        os.close(self.fd)


def _deep_folder(base: Path, length: int) -> _Deep:
    """A folder whose path is longer than ``length`` bytes, built with ``mkdir``/``openat``."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    path = base
    while len(os.fsencode(path)) < length:
        part = "d" * 250
        os.mkdir(part, dir_fd=fd)
        child = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
        path = path / part
    return _Deep(path, fd)


def test_store_input_streams_the_admitted_descriptor_into_the_store(tmp_path: Path) -> None:
    from thunderline.classify import store_input
    from thunderline.objects import LocalObjectStore

    store = LocalObjectStore(tmp_path / "objects")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.bin").write_bytes(b"payload")
    stored, admitted = store_input(tmp_path / "in" / "a.bin", tmp_path / "in", store, MB)
    assert store.get_bytes(stored.sha256) == b"payload" and admitted.size == 7
    (tmp_path / "in" / "link").symlink_to(tmp_path / "objects")
    with pytest.raises(PathEscapeError):
        store_input(tmp_path / "in" / "link", tmp_path / "in", store, MB)
    with pytest.raises(ArtifactTooLargeError):
        store_input(tmp_path / "in" / "a.bin", tmp_path / "in", store, 3)


def test_a_name_swapped_while_resolving_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """realpath's lstat saw a link, readlink then found a file (EINVAL): try again, not 'unreadable'."""
    import errno

    from thunderline.classify.admission import open_input

    target = tmp_path / "f.txt"
    target.write_bytes(b"hello")
    real_resolve = Path.resolve
    calls = {"n": 0}

    def flaky_resolve(self: Path, strict: bool = False) -> Path:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_resolve(self, strict=strict)

    monkeypatch.setattr(Path, "resolve", flaky_resolve)
    with open_input(target, None) as admitted:
        assert os.pread(admitted.fd, 5, 0) == b"hello"
    assert calls["n"] == 2


def test_a_name_that_never_stops_changing_is_refused_as_an_escape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from thunderline.classify.admission import open_input
    from thunderline.errors import PathEscapeError

    target = tmp_path / "f.txt"
    target.write_bytes(b"hello")

    def always_changing(self: Path, strict: bool = False) -> Path:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(Path, "resolve", always_changing)
    with pytest.raises(PathEscapeError, match="kept changing"):
        open_input(target, None)


def test_a_hard_link_is_refused_with_its_reason(tmp_path: Path) -> None:
    """``ln /etc/shadow inbox/x.txt``: the file's other name lies outside the root."""
    (tmp_path / "in").mkdir()
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret:::")
    os.link(secret, tmp_path / "in" / "x.txt")
    with pytest.raises(ArtifactError, match="hard link") as refused:
        open_input(tmp_path / "in" / "x.txt", tmp_path / "in")
    assert refused.value.reason == "hard_link" and refused.value.details["links"] == 2
    with pytest.raises(ArtifactError, match="TL_ALLOW_HARDLINKS"):
        admit(tmp_path / "in" / "x.txt", tmp_path / "in", MB)
    (tmp_path / "in" / "single.txt").write_text("one name")
    assert admit(tmp_path / "in" / "single.txt", tmp_path / "in", MB)[1] == 8


def test_hard_links_are_admitted_when_allowed(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("shared")
    os.link(tmp_path / "a.txt", tmp_path / "b.txt")
    with open_input(tmp_path / "b.txt", tmp_path, allow_hardlinks=True) as admitted:
        assert os.pread(admitted.fd, 10, 0) == b"shared"


def test_a_folder_swapped_for_a_link_after_listing_is_skipped_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``O_DIRECTORY | O_NOFOLLOW`` on a link fails with ENOTDIR on Linux: still a skip."""
    import contextlib

    from thunderline.classify import walk

    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "x.txt").write_text("x")
    (tmp_path / "elsewhere").mkdir()
    real_scandir = os.scandir

    @contextlib.contextmanager
    def listed_then_swapped(fd: int):  # type: ignore[no-untyped-def]
        with real_scandir(fd) as entries:
            listed = list(entries)
        if any(e.name == "sub" for e in listed):
            shutil.rmtree(root / "sub")
            (root / "sub").symlink_to(tmp_path / "elsewhere")
        yield iter(listed)

    monkeypatch.setattr(walk.os, "scandir", listed_then_swapped)
    (candidate,) = walk.iter_candidates([root], recursive=True)
    assert candidate.path == root / "sub" and candidate.error is None
    assert candidate.skip_reason == "symlinked_directory"
