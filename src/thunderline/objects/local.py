"""Local-folder object store (the default): ``<root>/sha256/ab/cd/<hex>``, written atomically."""

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
    spool_verified,
    verify,
)


class LocalObjectStore:
    """Content-addressed payloads in a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = self.root.resolve().as_uri()
        (self.root / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256[2:4] / sha256

    def _commit(self, tmp: Path, sha256: str) -> None:
        final = self._path(sha256)
        if final.exists():
            tmp.unlink(missing_ok=True)
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)

    def put_file(self, path: Path) -> StoredObject:
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        tmp = Path(tmp_name)
        try:
            sha, size = copy_hashing(path, fd)
            self._commit(tmp, sha)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return StoredObject(sha, size)

    def put_bytes(self, data: bytes) -> StoredObject:
        sha = hashlib.sha256(data).hexdigest()
        if not self._path(sha).exists():
            fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
            try:
                with os.fdopen(fd, "wb") as dst:
                    dst.write(data)
                self._commit(Path(tmp_name), sha)
            except OSError as exc:
                Path(tmp_name).unlink(missing_ok=True)
                raise BackendError(f"cannot write object {sha}: {exc}") from exc
        return StoredObject(sha, len(data))

    def get_bytes(self, sha256: str) -> bytes:
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
        return self._path(sha256).is_file()

    def local_path(self, sha256: str) -> Path | None:
        path = self._path(sha256)
        return path if path.is_file() else None
