"""Safe expansion of zip and tar archives into the object store.

Two passes. The first reads only the member headers and refuses the whole archive, before a
byte is written, when it has more than ``archive_max_members`` members, declares more than
``archive_max_total_bytes`` uncompressed, has a member compressed more than
``archive_max_ratio`` : 1 (zip; the whole archive for tar), or has a member with an absolute
path, a drive letter or a ``..`` component. Links, devices and FIFOs among the members are
skipped with a note (never extracted); the regular members are expanded. The second pass streams
each regular member into a temporary file inside the store's own folder (or the system temp
folder for remote stores) and puts it into the content-addressed store; it counts the bytes
really read, so a header that lies about sizes still stops at the limits. Nothing is ever
written at a path taken from the archive.
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from thunderline.config import ArchiveSettings
from thunderline.eventdata import Classification
from thunderline.objects.base import CHUNK, ObjectStore
from thunderline.voxel.errors import (
    ArchiveBombError,
    ArchiveCorruptError,
    ArchiveTooManyMembersError,
    ArchiveUnsafeMemberError,
)

#: Magika labels (and the group) whose artifacts are expanded.
ARCHIVE_LABELS = frozenset({"zip", "tar", "gzip", "bzip", "xz"})
ARCHIVE_GROUP = "archive"
#: The compression-ratio limit applies to members larger than this (tiny files compress well).
RATIO_MIN_BYTES = 64 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Member:
    """One expanded member, stored in the object store."""

    index: int
    name: str
    size: int
    sha256: str

    @property
    def ref(self) -> str:
        return f"sha256:{self.sha256}"


@dataclass(frozen=True)
class _Entry:
    name: str
    size: int
    handle: Any  # ZipInfo or TarInfo


def is_archive_classification(classification: Classification | None) -> bool:
    """Whether a classification names a format this module expands."""
    if classification is None:
        return False
    label, group = classification.label, classification.group
    return label in ARCHIVE_LABELS or (group == ARCHIVE_GROUP and label in {"zip", "tar"})


def archive_format(path: Path) -> str | None:
    """``zip``, ``tar`` (plain or gzip/bzip2/xz compressed) or ``None``."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, tarfile.TarError, EOFError):
        return None
    return None


def safe_member_name(name: str) -> str:
    """The member's normalised relative name; raises for absolute paths and ``..``."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise ArchiveUnsafeMemberError(
            f"archive member {name!r} has an absolute path", details={"member": name}
        )
    parts = [p for p in PurePosixPath(unified).parts if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveUnsafeMemberError(
            f"archive member {name!r} leaves the archive with '..'", details={"member": name}
        )
    if "\x00" in unified:
        raise ArchiveUnsafeMemberError(f"archive member {name!r} has a NUL byte")
    return "/".join(parts)


def _check_totals(entries: list[_Entry], limits: ArchiveSettings) -> None:
    if len(entries) > limits.max_members:
        raise ArchiveTooManyMembersError(
            f"archive has more than {limits.max_members} members",
            details={"limit": limits.max_members},
        )
    total = sum(e.size for e in entries)
    if total > limits.max_total_bytes:
        raise ArchiveBombError(
            f"archive declares {total} uncompressed bytes, limit {limits.max_total_bytes}",
            details={"declared_bytes": total, "limit": limits.max_total_bytes},
        )


def _zip_entries(zf: zipfile.ZipFile, limits: ArchiveSettings, notes: list[str]) -> list[_Entry]:
    entries: list[_Entry] = []
    for info in zf.infolist():
        name = safe_member_name(info.filename)
        if info.is_dir() or not name:
            continue
        mode = (info.external_attr >> 16) & 0o170000
        if mode and mode != 0o100000:  # symlinks and other special files: never extracted
            notes.append(f"member {info.filename!r} skipped: not a regular file (a link?)")
            continue
        if info.flag_bits & 0x1:
            raise ArchiveCorruptError(f"archive member {info.filename!r} is encrypted")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_MIN_BYTES and ratio > limits.max_ratio:
            raise ArchiveBombError(
                f"archive member {info.filename!r} expands {ratio:.0f}:1, "
                f"limit {limits.max_ratio:.0f}:1",
                details={"member": info.filename, "ratio": round(ratio, 1)},
            )
        entries.append(_Entry(name, info.file_size, info))
        if len(entries) > limits.max_members:
            break
    _check_totals(entries, limits)
    return entries


def _tar_entries(
    tf: tarfile.TarFile, archive_size: int, limits: ArchiveSettings, notes: list[str]
) -> list[_Entry]:
    entries: list[_Entry] = []
    for info in tf:
        name = safe_member_name(info.name)
        if info.isdir() or not name:
            continue
        if not info.isreg():  # a link, device or FIFO: never extracted, the rest still is
            kind = "link" if info.issym() or info.islnk() else "device or FIFO"
            notes.append(f"member {info.name!r} skipped: a {kind}, not a regular file")
            continue
        entries.append(_Entry(name, info.size, info))
        if len(entries) > limits.max_members:
            break
    _check_totals(entries, limits)
    total = sum(e.size for e in entries)
    ratio = total / max(archive_size, 1)
    if total > RATIO_MIN_BYTES and ratio > limits.max_ratio:
        raise ArchiveBombError(
            f"archive expands {ratio:.0f}:1, limit {limits.max_ratio:.0f}:1",
            details={"ratio": round(ratio, 1)},
        )
    return entries


def _store_stream(
    stream: IO[bytes], entry: _Entry, budget: list[int], store: ObjectStore, tmp_dir: Path
) -> tuple[str, int]:
    fd, tmp_name = tempfile.mkstemp(prefix="tl-member-", dir=tmp_dir)
    tmp = Path(tmp_name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                budget[0] -= len(chunk)
                if size > entry.size or budget[0] < 0:
                    raise ArchiveBombError(
                        f"archive member {entry.name!r} expands past its declared size or the "
                        "archive's total limit",
                        details={"member": entry.name},
                    )
                out.write(chunk)
        stored = store.put_file(tmp)
        return stored.sha256, stored.size
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _open(path: Path, fmt: str) -> Iterator[zipfile.ZipFile | tarfile.TarFile]:
    if fmt == "zip":
        with zipfile.ZipFile(path) as zf:
            yield zf
    else:
        with tarfile.open(path, "r:*") as tf:
            yield tf


def expand(
    path: Path,
    store: ObjectStore,
    limits: ArchiveSettings,
    *,
    tmp_dir: Path | None = None,
    notes: list[str] | None = None,
) -> list[Member]:
    """Check every member header, then stream the members into ``store``.

    Links, devices and FIFOs among the members are skipped (never extracted) and each is
    described in ``notes``: the archive and its regular members still become voxels.

    Raises ArchiveTooManyMembersError, ArchiveBombError, ArchiveUnsafeMemberError or
    ArchiveCorruptError; returns an empty list when ``path`` is not a zip or tar file.
    """
    fmt = archive_format(path)
    if fmt is None:
        return []
    work_dir = tmp_dir or Path(tempfile.gettempdir())
    work_dir.mkdir(parents=True, exist_ok=True)
    members: list[Member] = []
    notes = notes if notes is not None else []
    try:
        with _open(path, fmt) as archive:
            if isinstance(archive, zipfile.ZipFile):
                entries = _zip_entries(archive, limits, notes)
            else:
                entries = _tar_entries(archive, path.stat().st_size, limits, notes)
            budget = [limits.max_total_bytes]
            for index, entry in enumerate(entries):
                if isinstance(archive, zipfile.ZipFile):
                    stream: IO[bytes] | None = archive.open(entry.handle)
                else:
                    stream = archive.extractfile(entry.handle)
                if stream is None:
                    continue
                with stream:
                    sha, size = _store_stream(stream, entry, budget, store, work_dir)
                members.append(Member(index, entry.name, size, sha))
    except (
        zipfile.BadZipFile,
        zlib.error,
        tarfile.TarError,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
        RuntimeError,
    ) as exc:
        raise ArchiveCorruptError(f"archive cannot be read: {exc}") from exc
    return members
