"""ar (Debian packages), zstd-compressed tar and jar archives expand under the same limits."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from thunderline.objects.local import LocalObjectStore
from thunderline.testing import classification
from thunderline.testing.corpus import ar_bytes, deb_bytes, tar_bytes
from thunderline.voxel.archive import (
    Limits,
    archive_format,
    expand,
    is_archive_classification,
    sniffed_archive,
)
from thunderline.voxel.errors import ArchiveBombError, ArchiveUnsafeMemberError

LIMITS = Limits(max_members=10, max_total_bytes=10 * 1024 * 1024, max_ratio=100.0)
MEMBERS = [("doc/readme.txt", b"Marie Curie was born in Warsaw.\n"), ("odd", b"abc")]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_deb_is_an_ar_of_three_members(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    deb = _write(tmp_path / "curie.deb", deb_bytes(MEMBERS))
    assert archive_format(deb) == "ar"
    found = expand(deb, store, LIMITS, tmp_dir=store.root / "tmp")
    assert [m.name for m in found] == ["debian-binary", "control.tar.xz", "data.tar.xz"]
    assert store.get_bytes(found[0].sha256) == b"2.0\n"
    data = _write(tmp_path / "data.tar.xz", store.get_bytes(found[2].sha256))
    inner = expand(data, store, LIMITS, tmp_dir=store.root / "tmp")
    assert [(m.name, store.get_bytes(m.sha256)) for m in inner] == MEMBERS
    assert list((store.root / "tmp").iterdir()) == []


def test_odd_sized_ar_members_and_bsd_names(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    plain = _write(tmp_path / "a.a", ar_bytes([("x.o", b"123"), ("y.o", b"4567")]))
    found = expand(plain, store, LIMITS)
    assert [(m.name, store.get_bytes(m.sha256)) for m in found] == [
        ("x.o", b"123"),
        ("y.o", b"4567"),
    ]
    bsd = (
        b"!<arch>\n" + f"{'#1/12':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{12 + 2:<10}".encode() + b"`\n"
    )
    bsd += b"long-name.oXY"[:12] + b"hi"
    found = expand(_write(tmp_path / "bsd.a", bsd), store, LIMITS)
    assert [(m.name, store.get_bytes(m.sha256)) for m in found] == [("long-name.oX", b"hi")]


def test_ar_member_leaving_the_archive_is_refused(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    bad = _write(tmp_path / "bad.a", ar_bytes([("../../etc", b"x")]))
    with pytest.raises(ArchiveUnsafeMemberError):
        expand(bad, store, LIMITS)


def test_zstd_tar_expands_and_a_zstd_bomb_is_refused(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    zst = _write(tmp_path / "m.tar.zst", tar_bytes(MEMBERS, "zst"))
    assert archive_format(zst) == "zst"
    found = expand(zst, store, LIMITS, tmp_dir=store.root / "tmp")
    assert [(m.name, store.get_bytes(m.sha256)) for m in found] == MEMBERS
    bomb = _write(tmp_path / "bomb.tar.zst", tar_bytes([("zeros", b"\0" * 8_000_000)], "zst"))
    with pytest.raises(ArchiveBombError):
        expand(bomb, store, LIMITS, tmp_dir=store.root / "tmp")
    assert list((store.root / "tmp").iterdir()) == []


def test_labels_and_sniffing() -> None:
    for label in ("jar", "deb", "xz", "bzip"):
        kind = classification("txt").model_copy(update={"label": label, "group": "archive"})
        assert is_archive_classification(kind)
    unknown = classification("txt").model_copy(update={"label": "unknown", "group": "unknown"})
    assert sniffed_archive(unknown, b"\x28\xb5\x2f\xfd....")
    assert sniffed_archive(unknown, b"!<arch>\n")
    assert not sniffed_archive(unknown, b"hello")
    assert not sniffed_archive(classification("txt"), b"!<arch>\n")


def test_a_jar_is_a_zip(tmp_path: Path) -> None:
    jar = tmp_path / "app.jar"
    with zipfile.ZipFile(jar, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        zf.writestr("readme.txt", "hello")
    store = LocalObjectStore(tmp_path / "objects")
    assert [m.name for m in expand(jar, store, LIMITS)] == ["META-INF/MANIFEST.MF", "readme.txt"]
