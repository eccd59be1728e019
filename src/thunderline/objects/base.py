"""The object store protocol: content-addressed payloads, verified on every read.

A payload's reference is ``sha256:<hex>``; identical bytes are stored once. ``get_bytes``
re-hashes what it read and raises :class:`~thunderline.errors.ChecksumMismatch` (after counting
``thunderline_voxel_checksum_mismatch_total`` and logging a security warning) instead of
returning corrupt bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from thunderline.errors import ArtifactTooLargeError, ChecksumMismatch
from thunderline.obs import metrics

CHUNK = 1024 * 1024
_log = logging.getLogger("thunderline.objects")


@dataclass(frozen=True)
class StoredObject:
    """A payload in the object store, addressed by the SHA-256 of its bytes."""

    sha256: str
    size: int

    @property
    def ref(self) -> str:
        """The payload reference stored in voxels: ``sha256:<hex>``."""
        return f"sha256:{self.sha256}"


def sha_from_ref(ref: str) -> str:
    """The hex digest of a ``sha256:<hex>`` reference; anything else raises ``ValueError``."""
    prefix, _, digest = ref.partition(":")
    if prefix != "sha256" or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a payload reference: {ref!r}")
    return digest


def hash_stream(stream: BinaryIO, *, max_bytes: int | None = None) -> tuple[str, int]:
    """SHA-256 and size of a stream, read in chunks (never whole)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise ValueError(f"stream larger than {max_bytes} bytes")
        digest.update(chunk)
    return digest.hexdigest(), size


def _mismatch(what: str, expected: str, actual: str) -> ChecksumMismatch:
    """Count and log a payload checksum mismatch; return the error to raise."""
    metrics.VOXEL_CHECKSUM_MISMATCH.inc()
    _log.warning(
        "[security] Payload checksum mismatch for %s: expected=%s, actual=%s",
        what,
        expected,
        actual,
    )
    return ChecksumMismatch(f"checksum mismatch for {what}", expected=expected, actual=actual)


def copy_hashing(src_fd: int, fd: int, *, max_bytes: int | None = None) -> tuple[str, int]:
    """Copy everything readable from the descriptor ``src_fd`` into the descriptor ``fd``, hashing.

    The copy runs from offset 0 in chunks (never whole), hashing as it goes; ``src_fd`` is left open
    and ``fd`` is closed after.

    The source is never reopened by name: admission opened it once and checked that
    descriptor. Returns the SHA-256 and the size; a source that grows past ``max_bytes``
    while copied raises :class:`~thunderline.errors.ArtifactTooLargeError`.
    """
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "wb") as dst:
        offset = 0
        while chunk := os.pread(src_fd, CHUNK, offset):
            offset += len(chunk)
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise ArtifactTooLargeError(
                    f"grew past the limit of {max_bytes} bytes while being copied",
                    details={"size": size, "limit": max_bytes},
                )
            digest.update(chunk)
            dst.write(chunk)
    return digest.hexdigest(), size


def open_own_file(path: Path) -> int:
    """Open a file the process itself wrote (a temp spool) without following a final link."""
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


def put_own_file(store: ObjectStore, path: Path) -> StoredObject:
    """``store.put_fd`` over a file the process wrote itself: the one ``put_file`` of every store.

    The file is opened once, with no final link followed.
    """
    fd = open_own_file(path)
    try:
        return store.put_fd(fd)
    finally:
        os.close(fd)


def hash_fd(fd: int) -> tuple[str, int]:
    """SHA-256 and size of everything readable from ``fd`` (from offset 0; left open)."""
    digest = hashlib.sha256()
    size = 0
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        offset += len(chunk)
        size += len(chunk)
        digest.update(chunk)
    return digest.hexdigest(), size


def note_corrupt_object(what: str, expected: str, actual: str) -> None:
    """Count and log an existing object found corrupt by a write (which then replaces it)."""
    _mismatch(f"{what} (replaced by the write)", expected, actual)


def remove_stale_temps(folder: Path, prefix: str, max_age_s: float) -> int:
    """Remove temp files named ``prefix*`` in ``folder`` not modified for ``max_age_s``.

    A live copy rewrites its temp file every chunk, so only copies of killed processes are
    that old. Returns how many were removed (each logged).
    """
    import time

    cutoff = time.time() - max_age_s
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            if (
                entry.is_file(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime < cutoff
            ):
                os.unlink(entry.path)
                removed += 1
                _log.info("removed abandoned temp object %s", entry.path)
        except OSError:
            continue
    return removed


def verify(data: bytes, expected_sha256: str, *, what: str) -> bytes:
    """Return ``data`` if it hashes to ``expected_sha256``; otherwise count, log and raise."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise _mismatch(what, expected_sha256, actual)
    return data


class Sink(Protocol):
    """Anything bytes can be written to (a binary file, ``sys.stdout.buffer``...)."""

    def write(self, data: bytes, /) -> Any:
        """Write bytes (the minimal file-like sink :func:`spool_verified` writes to)."""
        ...


#: Payloads up to this size are spooled in memory by :func:`spool_verified`, larger on disk.
SPOOL_MEMORY_MAX = 8 * 1024 * 1024


def spool_verified(stream: BinaryIO, expected_sha256: str, dest: Sink, *, what: str) -> int:
    """Copy ``stream`` to ``dest`` only after all of it hashed to ``expected_sha256``.

    The bytes are spooled (memory, then a temporary file) while hashed; on a mismatch nothing
    reaches ``dest``: the mismatch is counted, logged and raised like :func:`verify`.
    """
    digest = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_MAX) as spool:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise _mismatch(what, expected_sha256, actual)
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            dest.write(chunk)
    return size


@runtime_checkable
class ObjectStore(Protocol):
    """What the pipeline needs from a payload store.

    ``tests/integration/contracts`` runs the same suite over every implementation.

    A missing payload is :class:`~thunderline.errors.PayloadNotFound`, corrupt bytes
    :class:`~thunderline.errors.ChecksumMismatch`, a backend failure
    :class:`~thunderline.errors.BackendError`; never a bare ``KeyError`` or ``OSError``.
    """

    #: Where the store is (``file:///...``, ``s3://bucket/prefix``).
    url: str

    @property
    def root(self) -> Path | None:
        """The store's local folder (its ``tmp/`` shares the filesystem), None when remote."""
        ...

    def put_file(self, path: Path) -> StoredObject:
        """Store the bytes of a file the process wrote itself (streamed); return its address.

        Never for user input: that is admitted and stored through its descriptor
        (:meth:`put_fd`).
        """
        ...

    def put_fd(self, fd: int, *, max_bytes: int | None = None) -> StoredObject:
        """Store everything readable from an open descriptor (left open; streamed)."""
        ...

    def put_bytes(self, data: bytes) -> StoredObject:
        """Store bytes under their SHA-256 (a no-op when an intact copy is there)."""
        ...

    def get_bytes(self, sha256: str) -> bytes:
        """The payload, verified against its address.

        Raises ChecksumMismatch or PayloadNotFound.
        """
        ...

    def copy_verified(self, sha256: str, dest: Sink) -> int:
        """Stream the payload to ``dest`` only after all of it was verified; returns its size.

        Memory stays bounded. Raises ChecksumMismatch (nothing written) or PayloadNotFound.
        """
        ...

    def exists(self, sha256: str) -> bool:
        """True when an object with this SHA-256 is stored."""
        ...

    def local_path(self, sha256: str) -> Path | None:
        """A filesystem path to the stored bytes when the store is local (for Magika)."""
        ...
