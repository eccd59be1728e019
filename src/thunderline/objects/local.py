"""Local-folder object store (the default): ``<root>/sha256/ab/cd/<hex>``, written atomically.

Writes go to ``<root>/tmp`` and are renamed into place. A write that finds its object already
there re-hashes the existing file and replaces it when it is corrupt (a corrupted object would
otherwise poison every later ingest of the same bytes). Temp files left by a killed process are
removed when a store is opened, once they are older than ``tmp_max_age_s`` (by modification
time: a live copy writes a chunk at least that often).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from thunderline.errors import BackendError, PayloadNotFound
from thunderline.objects.base import (
    Sink,
    StoredObject,
    copy_hashing,
    hash_fd,
    note_corrupt_object,
    open_own_file,
    put_own_file,
    remove_stale_temps,
    spool_verified,
    verify,
)

#: Default age after which an abandoned temp object is removed (see the module docstring).
TMP_MAX_AGE_S = 3600.0


class LocalObjectStore:
    """Content-addressed payloads in a local folder."""

    def __init__(self, root: Path, *, tmp_max_age_s: float = TMP_MAX_AGE_S) -> None:
        self.root = Path(root)
        self.url = self.root.resolve().as_uri()
        self._objects = os.path.join(self.root, "sha256")
        (self.root / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self.removed_temps = remove_stale_temps(self.root / "tmp", "", tmp_max_age_s)

    def _path(self, sha256: str) -> Path:
        # one Path built from a string (not four joins): this runs twice per stored file
        return Path(f"{self._objects}/{sha256[:2]}/{sha256[2:4]}/{sha256}")

    def _existing_ok(self, final: Path, sha256: str) -> bool:
        """Whether the object already stored at ``final`` hashes to its name."""
        try:
            fd = open_own_file(final)
        except FileNotFoundError:
            return False
        try:
            actual, _ = hash_fd(fd)
        finally:
            os.close(fd)
        if actual == sha256:
            return True
        note_corrupt_object(f"sha256:{sha256} in {self.root}", sha256, actual)
        return False

    def _commit(self, tmp: Path, sha256: str, *, checked: bool = False) -> None:
        """Rename ``tmp`` into place unless a good copy is there.

        ``checked``: the caller already found the existing copy corrupt or absent.
        """
        final = self._path(sha256)
        if not checked and final.exists() and self._existing_ok(final, sha256):
            tmp.unlink(missing_ok=True)
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)  # also replaces a corrupt object with the good bytes

    def put_fd(self, fd: int, *, max_bytes: int | None = None) -> StoredObject:
        """Stream everything readable from ``fd`` (left open) into the store."""
        tmp_fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        tmp = Path(tmp_name)
        try:
            sha, size = copy_hashing(fd, tmp_fd, max_bytes=max_bytes)
            self._commit(tmp, sha)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return StoredObject(sha, size)

    def put_file(self, path: Path) -> StoredObject:
        """Store the file at ``path`` (copied, hashed, and moved into place atomically)."""
        return put_own_file(self, path)

    def adopt(self, path: Path, sha256: str, size: int) -> StoredObject:
        """Move a file this process wrote, and hashed as it wrote it, into the store (no copy).

        ``sha256`` and ``size`` must be those of the file's bytes (an API upload hashes its
        spool file while writing it): the file is renamed into place, read-only, unless a good
        copy is there already (then it is removed, as :meth:`put_fd` removes its temp file).
        ``path`` must be on the store's file system; ``OSError`` otherwise (``EXDEV``), and
        the file is left where it was.
        """
        self._commit(path, sha256)
        return StoredObject(sha256, size)

    def put_bytes(self, data: bytes) -> StoredObject:
        """Store bytes under their SHA-256, written to a temporary file and renamed into place."""
        sha = hashlib.sha256(data).hexdigest()
        final = self._path(sha)
        if not (final.exists() and self._existing_ok(final, sha)):
            fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
            try:
                with os.fdopen(fd, "wb") as dst:
                    dst.write(data)
                self._commit(Path(tmp_name), sha, checked=True)
            except OSError as exc:
                Path(tmp_name).unlink(missing_ok=True)
                raise BackendError(f"cannot write object {sha}: {exc}") from exc
        return StoredObject(sha, len(data))

    def get_bytes(self, sha256: str) -> bytes:
        """The payload, verified against its address. Raises PayloadNotFound or ChecksumMismatch."""
        try:
            data = self._path(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise PayloadNotFound(f"no object sha256:{sha256}") from exc
        return verify(data, sha256, what=f"sha256:{sha256}")

    def copy_verified(self, sha256: str, dest: Sink) -> int:
        """Stream the payload to ``dest`` after verifying all of it (bounded memory)."""
        try:
            handle = open(self._path(sha256), "rb")  # noqa: SIM115
        except FileNotFoundError as exc:
            raise PayloadNotFound(f"no object sha256:{sha256}") from exc
        with handle:
            return spool_verified(handle, sha256, dest, what=f"sha256:{sha256}")

    def exists(self, sha256: str) -> bool:
        """True when the object's file exists."""
        return self._path(sha256).is_file()

    def local_path(self, sha256: str) -> Path | None:
        """The object's file, which Magika reads in place; ``None`` when absent."""
        path = self._path(sha256)
        return path if path.is_file() else None

    def delete(self, sha256: str) -> None:
        """Remove an object (garbage collection of payloads no voxel references any more)."""
        try:
            self._path(sha256).unlink(missing_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot delete sha256:{sha256}: {exc}") from exc
