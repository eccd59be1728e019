"""Admission of a local file: open it **once**, check the descriptor, read only through it.

The race this closes: checking a path and then opening it again by name lets anyone who can
write in the ingest folder swap the file for a symlink to ``/etc/shadow`` (stored and served
back) or for a FIFO (``open()`` blocks forever) between the check and the open. So:

1. The path is opened once, relative to the descriptor of the ingest root that the walk
   opened and holds (:mod:`.roots`: the root itself is never opened by name again, so
   renaming it away and putting a symlink in its place changes nothing), one component at a
   time (``openat``-style walking) with ``O_NOFOLLOW``: no component may be a symlink or
   ``..``, so what is opened is inside the root by construction, and paths longer than
   ``PATH_MAX`` open too (every step is one name). The last component is opened with
   ``O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`` so a FIFO or device never blocks the open.
2. When a component is a symlink, the symlink is resolved by name (``realpath``) and the
   result opened the same way (``O_NOFOLLOW | O_NONBLOCK``); the decisive check is then the
   **descriptor's** real path (``/proc/self/fd/N``) against the real path of the held root's
   descriptor, so whatever a concurrent swap made us open, nothing outside the root gets
   through.
3. ``fstat`` on the descriptor: only a regular file, with one link (a hard link's other
   names may lie outside the root: refused unless ``TL_ALLOW_HARDLINKS``), at most
   ``max_bytes`` (a file growing past the limit while copied is refused by the copy too).
   ``O_NONBLOCK`` is cleared before reading.

The caller reads the bytes through :attr:`Admitted.fd` (``ObjectStore.put_fd``) and closes it.
Each refusal is a typed, permanent error.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from thunderline import names
from thunderline.classify.roots import HELD, HeldRoot, fd_path, open_root
from thunderline.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    HardLinkError,
    NotARegularFileError,
    PathEscapeError,
    UnreadableArtifactError,
)
from thunderline.objects.base import ObjectStore, StoredObject

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
#: How often a path that keeps changing under us is re-tried before it is refused.
_ATTEMPTS = 3


def _shown(path: Path) -> str:
    """A path for an error message: control characters and undecodable bytes escaped.

    The exact path travels in the event.
    """
    return names.shown(str(path))


@dataclass
class Admitted:
    """An admitted input: an open descriptor of a regular file inside the root (close it)."""

    fd: int
    path: Path  # as given (absolute)
    real_path: Path  # what the descriptor is (symlinks resolved)
    size: int
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Close the admitted descriptor (idempotent)."""
        if not self._closed:
            self._closed = True
            os.close(self.fd)

    def __enter__(self) -> Admitted:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def error_for_os(path: Path, exc: OSError) -> ArtifactError:
    """The typed refusal for an ``open``/``stat`` failure."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return ArtifactNotFoundError(f"{_shown(path)}: no such file")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UnreadableArtifactError(f"{_shown(path)}: permission denied")
    if exc.errno == errno.ENXIO:  # a socket, or a device with nothing behind it
        return NotARegularFileError(f"{_shown(path)}: not a regular file (socket or device)")
    if exc.errno == errno.ENAMETOOLONG:
        return UnreadableArtifactError(f"{_shown(path)}: name too long ({exc.strerror})")
    return UnreadableArtifactError(f"{_shown(path)}: {exc.strerror or exc}")


def resolve_inside(path: Path, root: Path | None) -> Path:
    """Resolve ``path`` by name (symlinks, ``..``) and check it is inside ``root``.

    Only a pre-check that gives a precise message (dangling link, loop, escape); the
    descriptor check of :func:`open_input` is what admission relies on.
    """
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError as exc:
        if path.is_symlink():
            raise ArtifactNotFoundError(f"{_shown(path)}: dangling symlink") from exc
        raise ArtifactNotFoundError(f"{_shown(path)}: no such file") from exc
    except RuntimeError as exc:  # Python < 3.13 reports symlink loops this way
        raise NotARegularFileError(f"{_shown(path)}: symlink loop") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotARegularFileError(f"{_shown(path)}: symlink loop") from exc
        if exc.errno == errno.EINVAL:  # a link swapped for a non-link between lstat and readlink
            raise _ChangedWhileResolving(f"{_shown(path)}: changed while being resolved") from exc
        raise error_for_os(path, exc) from exc
    if root is not None:
        _check_inside(path, resolved, _real_root(root))
    return resolved


class _ChangedWhileResolving(UnreadableArtifactError):
    """The name changed under ``realpath`` (EINVAL from readlink): admission tries again."""


def _real_root(root: Path) -> Path:
    return Path(os.path.realpath(root))


def _check_inside(path: Path, real: Path, real_root: Path) -> None:
    if real != real_root and real_root not in real.parents:
        raise PathEscapeError(
            f"{_shown(path)}: resolves to {_shown(real)}, outside the ingest root {_shown(real_root)}",
            details={"resolved": str(real), "root": str(real_root)},
        )


class _NeedsResolve(Exception):
    """A component is a symlink (or ``..``): fall back to resolving by name."""


def _open_walking(path: Path, root: Path, root_fd: int) -> int:
    """Open ``path`` from the root's descriptor one component at a time, never following a link.

    ``root`` is the root as given: ``path`` is below it by name.
    """
    try:
        relative = path.relative_to(root)
    except ValueError as exc:
        raise _NeedsResolve from exc
    parts = relative.parts
    if not parts or ".." in parts:
        raise _NeedsResolve
    dir_fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _NeedsResolve from exc  # a symlink (or not a directory at all)
                raise
            os.close(dir_fd)
            dir_fd = next_fd
        try:
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _NeedsResolve from exc
            raise
    finally:
        os.close(dir_fd)


def _open_resolved(path: Path, real_root: Path | None) -> tuple[int, Path]:
    """Resolve by name, open the result without following it, check the descriptor against the root.

    The root to check against is ``real_root`` (the real path of the held root's descriptor).
    """
    try:
        resolved = resolve_inside(path, None)
        if real_root is not None:
            _check_inside(path, resolved, real_root)  # the precise message, before opening
    except _ChangedWhileResolving as exc:
        raise _NeedsResolve from exc  # swapped while resolving: try again
    try:
        fd = os.open(resolved, _FILE_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _NeedsResolve from exc  # swapped for a link after resolving: try again
        raise error_for_os(path, exc) from exc
    real = fd_path(fd)
    if real is None:  # no /proc: the same inode as the resolved name is the best we can do
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(resolved, follow_symlinks=False))
        except OSError:
            same = False
        if not same:
            os.close(fd)
            raise _NeedsResolve
        real = resolved
    if str(real).endswith(" (deleted)"):
        os.close(fd)
        raise ArtifactNotFoundError(f"{_shown(path)}: removed while being admitted")
    if real_root is not None:
        try:
            _check_inside(path, real, real_root)
        except PathEscapeError:
            os.close(fd)
            raise
    return fd, real


def _root_descriptor(root: Path) -> tuple[HeldRoot, int]:
    """The held root (:data:`.roots.HELD`) and a duplicate of its descriptor to open from.

    A root that is not held is opened for this one file by the same rule.
    """
    found = HELD.dup(root)
    if found is not None:
        return found
    try:
        fd, opened = open_root(root)
    except OSError as exc:
        raise error_for_os(root, exc) from exc
    return HeldRoot(root, opened, fd), fd


def open_input(path: Path, root: Path | None, *, allow_hardlinks: bool = False) -> Admitted:
    """Open a local input once and check the descriptor (not its size: see :func:`admit`).

    ``root`` is reached through the descriptor the walk holds for it (:mod:`.roots`), never
    by name while it is held. A regular file with more than one link is refused unless
    ``allow_hardlinks`` (``TL_ALLOW_HARDLINKS``).

    Raises:
        ArtifactNotFoundError, NotARegularFileError, PathEscapeError, HardLinkError,
        UnreadableArtifactError: why it may not be read.
    """
    path = Path(os.path.abspath(path))
    if root is None:
        fd, real = _open_unrooted(path)
    else:
        given_root = Path(os.path.abspath(root))  # as given (may itself be a link)
        held, root_fd = _root_descriptor(given_root)
        try:
            fd, real = _open_rooted(path, given_root, held, root_fd)
        finally:
            os.close(root_fd)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise NotARegularFileError(f"{_shown(path)}: is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFileError(
                f"{_shown(path)}: not a regular file (mode {stat.filemode(st.st_mode)})"
            )
        if st.st_nlink > 1 and not allow_hardlinks:
            raise HardLinkError(
                f"{_shown(path)}: a hard link ({st.st_nlink} names; the others may lie "
                "outside the ingest root): refused (TL_ALLOW_HARDLINKS=true to ingest it)",
                details={"links": st.st_nlink, "inode": st.st_ino},
            )
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return Admitted(fd=fd, path=path, real_path=real, size=st.st_size)


def _open_rooted(path: Path, given_root: Path, held: HeldRoot, root_fd: int) -> tuple[int, Path]:
    """Open ``path`` below a root descriptor, with a few tries while it keeps changing.

    It is opened component by component, else resolved and checked against the real path of that
    descriptor.
    """
    for _ in range(_ATTEMPTS):
        try:
            try:
                fd = _open_walking(path, given_root, root_fd)
                # no symlink below the root was followed: the real path is the root's
                return fd, held.real(root_fd) / path.relative_to(given_root)
            except _NeedsResolve:
                pass
            except OSError as exc:
                raise error_for_os(path, exc) from exc
            return _open_resolved(path, held.real(root_fd))
        except _NeedsResolve:
            continue
    raise PathEscapeError(
        f"{_shown(path)}: kept changing into a symlink while being admitted",
        details={"root": str(given_root)},
    )


def _open_unrooted(path: Path) -> tuple[int, Path]:
    """Open a path with no root (resolved by name, the descriptor checked)."""
    for _ in range(_ATTEMPTS):
        try:
            return _open_resolved(path, None)
        except _NeedsResolve:
            continue
    raise PathEscapeError(
        f"{_shown(path)}: kept changing into a symlink while being admitted",
        details={"root": None},
    )


def check_size(admitted: Admitted, max_bytes: int) -> None:
    """Refuse an admitted input larger than ``max_bytes`` (its descriptor stays open)."""
    if admitted.size > max_bytes:
        raise ArtifactTooLargeError(
            f"{_shown(admitted.path)}: {admitted.size} bytes is over the limit of {max_bytes} "
            "(TL_MAX_ARTIFACT_BYTES)",
            details={"size": admitted.size, "limit": max_bytes},
        )


def admit(
    path: Path, root: Path | None, max_bytes: int, *, allow_hardlinks: bool = False
) -> tuple[Path, int]:
    """Check a file may be ingested; return its real path and size (the descriptor is closed).

    For reading, use :func:`open_input` and read through the descriptor instead: a path
    returned here may be swapped before anyone opens it again.

    Raises:
        ArtifactNotFoundError, NotARegularFileError, PathEscapeError, UnreadableArtifactError,
        ArtifactTooLargeError, HardLinkError: the reason it may not.
    """
    with open_input(path, root, allow_hardlinks=allow_hardlinks) as admitted:
        check_size(admitted, max_bytes)
        return admitted.real_path, admitted.size


def store_input(
    path: Path,
    root: Path | None,
    store: ObjectStore,
    max_bytes: int,
    *,
    allow_hardlinks: bool = False,
) -> tuple[StoredObject, Admitted]:
    """Admit a local input and stream it into ``store`` through its one descriptor.

    The one entry point for callers that only need the bytes stored (a submitter that ships
    artifacts by reference); returns the stored object and the (closed) admission record.
    Raises the refusals of :func:`open_input` and :func:`check_size`.
    """
    with open_input(path, root, allow_hardlinks=allow_hardlinks) as admitted:
        check_size(admitted, max_bytes)
        stored = store.put_fd(admitted.fd, max_bytes=max_bytes)
    return stored, admitted
