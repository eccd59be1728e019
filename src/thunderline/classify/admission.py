"""Admission of a local file: the checks that run before any byte is read.

A path is admitted only if it (after resolving symlinks) stays inside its root, is a regular
file (never a directory, FIFO, socket or device: opening a FIFO would block), is readable and
not larger than the configured limit. Each refusal is a typed, permanent error.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from thunderline.errors import (
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    NotARegularFileError,
    PathEscapeError,
    UnreadableArtifactError,
)


def resolve_inside(path: Path, root: Path | None) -> Path:
    """Resolve ``path`` (symlinks, ``..``) and check it is inside ``root``."""
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError as exc:
        if path.is_symlink():
            raise ArtifactNotFoundError(f"{path}: dangling symlink") from exc
        raise ArtifactNotFoundError(f"{path}: no such file") from exc
    except RuntimeError as exc:  # Python < 3.13 reports symlink loops this way
        raise NotARegularFileError(f"{path}: symlink loop") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotARegularFileError(f"{path}: symlink loop") from exc
        if exc.errno == errno.EACCES:
            raise UnreadableArtifactError(f"{path}: permission denied") from exc
        raise UnreadableArtifactError(f"{path}: {exc.strerror}") from exc
    if root is not None:
        real_root = root.resolve()
        if resolved != real_root and real_root not in resolved.parents:
            raise PathEscapeError(
                f"{path}: resolves to {resolved}, outside the ingest root {real_root}",
                details={"resolved": str(resolved), "root": str(real_root)},
            )
    return resolved


def admit(path: Path, root: Path | None, max_bytes: int) -> tuple[Path, int]:
    """Check a file may be ingested; return its resolved path and size.

    Raises:
        ArtifactNotFoundError, NotARegularFileError, PathEscapeError, UnreadableArtifactError,
        ArtifactTooLargeError: the reason it may not.
    """
    resolved = resolve_inside(path, root)
    st = resolved.stat()
    if stat.S_ISDIR(st.st_mode):
        raise NotARegularFileError(f"{path}: is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFileError(f"{path}: not a regular file (mode {stat.filemode(st.st_mode)})")
    if not os.access(resolved, os.R_OK):
        raise UnreadableArtifactError(f"{path}: permission denied")
    if st.st_size > max_bytes:
        raise ArtifactTooLargeError(
            f"{path}: {st.st_size} bytes is over the limit of {max_bytes} (TL_MAX_ARTIFACT_BYTES)",
            details={"size": st.st_size, "limit": max_bytes},
        )
    return resolved, st.st_size
