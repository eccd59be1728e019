"""Safe expansion of zip, tar and ar archives into the object store.

Tar plain or compressed with gzip, bzip2, xz or zstd; ar as in Debian packages.

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

A zstd-compressed file is decompressed first (through the same byte budget, into the same
temporary folder) and expanded when it holds a tar; an ``ar`` archive (``.deb``, ``.a``) is
read header by header like a tar (its ``/`` symbol table and ``//`` long-name table are
skipped; BSD ``#1/N`` names are read).
"""

from __future__ import annotations

import io
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
ARCHIVE_LABELS = frozenset({"zip", "tar", "gzip", "bzip", "xz", "jar", "xpi", "deb"})
#: Labels Magika gives files it cannot name: expanded when their magic bytes say zstd or ar.
SNIFFED_LABELS = frozenset({"unknown", "randombytes", "undefined"})
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
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
        """The member's object-store reference, ``sha256:<hex>``."""
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


def sniffed_archive(classification: Classification | None, head: bytes) -> bool:
    """Whether a file Magika could not name starts like a zstd stream or an ar archive."""
    if classification is None or classification.label not in SNIFFED_LABELS:
        return False
    return head.startswith((ZSTD_MAGIC, AR_MAGIC))


def archive_format(path: Path) -> str | None:
    """``zip``, ``tar`` (plain or gzip/bzip2/xz compressed), ``zst``, ``ar`` or ``None``."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(ZSTD_MAGIC):
        return "zst"
    if head.startswith(AR_MAGIC):
        return "ar"
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


class _ArMember:
    """Where one ar member's bytes are (a ``handle`` for :class:`_Entry`)."""

    def __init__(self, offset: int, size: int) -> None:
        self.offset = offset
        self.size = size


def _ar_entries(path: Path, limits: ArchiveSettings) -> list[_Entry]:
    """The regular members of an ar archive (GNU and BSD names), headers only."""
    entries: list[_Entry] = []
    total = path.stat().st_size
    long_names = b""
    with path.open("rb") as handle:
        if handle.read(8) != AR_MAGIC:
            raise ArchiveCorruptError("not an ar archive")
        offset = 8
        while offset + _AR_HEADER <= total:
            handle.seek(offset)
            header = handle.read(_AR_HEADER)
            if len(header) < _AR_HEADER or header[58:60] != b"`\n":
                raise ArchiveCorruptError(f"ar header at byte {offset} is damaged")
            raw_name = header[:16].rstrip(b" ")
            try:
                size = int(header[48:58].strip() or b"0")
            except ValueError as exc:
                raise ArchiveCorruptError(
                    f"ar member size at byte {offset} is not a number"
                ) from exc
            data_at = offset + _AR_HEADER
            if size < 0 or data_at + size > total:
                raise ArchiveCorruptError("ar member runs past the end of the archive")
            name_bytes = raw_name
            skip = 0
            if raw_name == b"//":
                long_names = handle.read(min(size, 1024 * 1024))
                name_bytes = b""
            elif raw_name in (b"/", b"/SYM64/", b"__.SYMDEF", b"__.SYMDEF SORTED"):
                name_bytes = b""
            elif raw_name.startswith(b"#1/"):  # BSD: the name is the first N data bytes
                skip = int(raw_name[3:] or b"0")
                name_bytes = handle.read(skip).rstrip(b"\0")
            elif raw_name.startswith(b"/") and raw_name[1:].isdigit():  # GNU long name
                start = int(raw_name[1:])
                end = long_names.find(b"/\n", start)
                name_bytes = long_names[start : end if end >= 0 else None]
            else:
                name_bytes = raw_name[:-1] if raw_name.endswith(b"/") else raw_name
            if name_bytes:
                name = safe_member_name(name_bytes.decode("utf-8", "surrogateescape"))
                if name:
                    member = _ArMember(data_at + skip, size - skip)
                    entries.append(_Entry(name, size - skip, member))
                    if len(entries) > limits.max_members:
                        break
            offset = data_at + size + (size % 2)
    _check_totals(entries, limits)
    return entries


def _unzstd(path: Path, limits: ArchiveSettings, work_dir: Path) -> Path:
    """Decompress a zstd file into ``work_dir`` within the byte and ratio limits."""
    import zstandard

    fd, name = tempfile.mkstemp(prefix="tl-unzstd-", dir=work_dir)
    out_path = Path(name)
    budget = limits.max_total_bytes
    ratio_cap = max(path.stat().st_size, 1) * limits.max_ratio
    size = 0
    try:
        with path.open("rb") as source, os.fdopen(fd, "wb") as out:
            reader = zstandard.ZstdDecompressor().stream_reader(source)
            while chunk := reader.read(CHUNK):
                size += len(chunk)
                if size > budget or (size > RATIO_MIN_BYTES and size > ratio_cap):
                    raise ArchiveBombError(
                        f"zstd stream expands past {min(budget, int(ratio_cap))} bytes",
                        details={"limit": budget, "ratio_limit": limits.max_ratio},
                    )
                out.write(chunk)
    except zstandard.ZstdError as exc:
        out_path.unlink(missing_ok=True)
        raise ArchiveCorruptError(f"zstd stream cannot be read: {exc}") from exc
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    return out_path


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


def _expand_ar(
    path: Path, store: ObjectStore, limits: ArchiveSettings, work_dir: Path
) -> list[Member]:
    entries = _ar_entries(path, limits)
    budget = [limits.max_total_bytes]
    members: list[Member] = []
    try:
        with path.open("rb") as handle:
            for index, entry in enumerate(entries):
                member: _ArMember = entry.handle
                handle.seek(member.offset)
                stream = io.BufferedReader(_Bounded(handle, member.size))
                sha, size = _store_stream(stream, entry, budget, store, work_dir)
                members.append(Member(index, entry.name, size, sha))
    except OSError as exc:
        raise ArchiveCorruptError(f"archive cannot be read: {exc}") from exc
    return members


class _Bounded(io.RawIOBase):
    """At most ``size`` bytes of ``handle`` from where it stands."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self.handle = handle
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(buffer)
        data = self.handle.read(min(len(view), self.left))
        view[: len(data)] = data
        self.left -= len(data)
        return len(data)


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
    if fmt == "zst":
        inner = _unzstd(path, limits, work_dir)
        try:
            if archive_format(inner) != "tar":
                notes.append("zstd stream holds no tar archive: not expanded")
                return []
            return expand(inner, store, limits, tmp_dir=work_dir, notes=notes)
        finally:
            inner.unlink(missing_ok=True)
    if fmt == "ar":
        return _expand_ar(path, store, limits, work_dir)
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
