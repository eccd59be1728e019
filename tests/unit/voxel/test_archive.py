"""Archive expansion: limits, unsafe member names, links, and nothing written outside the store."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from thunderline.config import ArchiveSettings
from thunderline.eventdata import Classification
from thunderline.objects.local import LocalObjectStore
from thunderline.testing import classification
from thunderline.voxel.archive import (
    archive_format,
    expand,
    is_archive_classification,
    safe_member_name,
)
from thunderline.voxel.errors import (
    ArchiveBombError,
    ArchiveCorruptError,
    ArchiveTooManyMembersError,
    ArchiveUnsafeMemberError,
)

LIMITS = ArchiveSettings(max_members=10, max_total_bytes=10 * 1024 * 1024, max_ratio=100.0)


def _zip(path: Path, members: dict[str, bytes], *, deflate: bool = True) -> Path:
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _store_files(store: LocalObjectStore) -> set[Path]:
    return {p for p in store.root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.txt", "a.txt"), ("./dir/b.txt", "dir/b.txt"), ("dir\\c.txt", "dir/c.txt"), ("d/", "d")],
)
def test_safe_names(name: str, expected: str) -> None:
    assert safe_member_name(name) == expected


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/etc/passwd", "C:\\x", "..\\x"])
def test_unsafe_names(name: str) -> None:
    with pytest.raises(ArchiveUnsafeMemberError) as info:
        safe_member_name(name)
    assert info.value.reason == "archive_unsafe_member"


def test_zip_and_tar_members_go_to_the_store(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    members = {"a.txt": b"alpha", "dir/b.csv": b"x,y\n1,2\n", "empty": b""}
    for archive in (_zip(tmp_path / "m.zip", members), _tar(tmp_path / "m.tgz", members)):
        found = expand(archive, store, LIMITS, tmp_dir=store.root / "tmp")
        assert [(m.index, m.name, m.size) for m in found] == [
            (0, "a.txt", 5),
            (1, "dir/b.csv", 8),
            (2, "empty", 0),
        ]
        for member in found:
            assert store.get_bytes(member.sha256) == members[member.name]
            assert member.sha256 == hashlib.sha256(members[member.name]).hexdigest()
    assert list((store.root / "tmp").iterdir()) == []  # temporary files cleaned up


def test_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    bomb = _zip(tmp_path / "bomb.zip", {"ok.txt": b"fine", "zeros.bin": bytes(5 * 1024 * 1024)})
    before = _store_files(store)
    with pytest.raises(ArchiveBombError) as info:
        expand(bomb, store, LIMITS)
    assert info.value.reason == "archive_bomb"
    assert "zeros.bin" in str(info.value)
    assert _store_files(store) == before


def test_total_size_and_member_count_limits(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    big = _zip(tmp_path / "big.zip", {"a": b"1" * 600, "b": b"2" * 600}, deflate=False)
    with pytest.raises(ArchiveBombError):
        expand(big, store, ArchiveSettings(max_members=10, max_total_bytes=1000, max_ratio=100.0))
    many = _zip(tmp_path / "many.zip", {f"f{i}": b"x" for i in range(11)})
    with pytest.raises(ArchiveTooManyMembersError):
        expand(many, store, LIMITS)
    tar_bomb = _tar(tmp_path / "bomb.tgz", {"zeros": bytes(4 * 1024 * 1024)})
    with pytest.raises(ArchiveBombError):
        expand(tar_bomb, store, LIMITS)


def test_dotdot_member_writes_nothing_anywhere(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    work = tmp_path / "work"
    work.mkdir()
    for archive in (
        _zip(work / "evil.zip", {"good.txt": b"ok", "../escaped.txt": b"pwned"}),
        _tar(work / "evil.tgz", {"good.txt": b"ok", "../escaped.txt": b"pwned"}),
    ):
        before = _store_files(store)
        with pytest.raises(ArchiveUnsafeMemberError, match=r"\.\."):
            expand(archive, store, LIMITS, tmp_dir=store.root / "tmp")
        assert _store_files(store) == before
    assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("*"))


def test_tar_links_are_skipped_with_a_note_and_the_rest_expanded(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    path = tmp_path / "link.tar"
    with tarfile.open(path, "w") as tf:
        link = tarfile.TarInfo("passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
        hard = tarfile.TarInfo("hard")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "passwd"
        tf.addfile(hard)
        data = b"a regular member"
        info = tarfile.TarInfo("ok.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    notes: list[str] = []
    members = expand(path, store, LIMITS, notes=notes)
    assert [m.name for m in members] == ["ok.txt"]
    assert store.get_bytes(members[0].sha256) == b"a regular member"
    assert len(notes) == 2 and all("link" in n for n in notes)
    assert not any(p.name == "passwd" for p in tmp_path.rglob("*"))


def test_not_an_archive_and_corrupt_archive(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    plain = tmp_path / "plain.txt"
    plain.write_text("just text")
    assert archive_format(plain) is None
    assert expand(plain, store, LIMITS) == []
    good = _zip(tmp_path / "c.zip", {"a.txt": b"hello world " * 100})
    raw = bytearray(good.read_bytes())
    start = raw.find(b"a.txt") + len("a.txt")
    raw[start + 5 : start + 15] = b"\xff" * 10  # damage the compressed data, keep the index
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bytes(raw))
    with pytest.raises(ArchiveCorruptError):
        expand(broken, store, LIMITS)


def test_which_classifications_expand() -> None:
    def kind(label: str, group: str) -> Classification:
        return classification("unknown").model_copy(update={"label": label, "group": group})

    assert is_archive_classification(kind("zip", "archive"))
    assert is_archive_classification(kind("gzip", "archive"))
    assert not is_archive_classification(kind("docx", "document"))
    assert not is_archive_classification(None)
