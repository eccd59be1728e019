"""Ingest roots, opened once and held: what every file below is reached from.

The attack this closes: whoever can write the folder that *holds* the ingest root can rename
the root away and put a symlink to ``/etc`` in its place while ``ingest -r`` runs; a root
opened again by name for each file then reads ``/etc/shadow``. So a root is opened **once**,
when the walk starts, and that descriptor is what the walk lists and what admission opens
every file relative to (``openat``-style), for as long as the run lasts:

* A root is opened with ``O_DIRECTORY | O_NOFOLLOW``. A root the user gives as a symlink (on
  purpose: ``ingest ~/inbox`` where ``inbox`` is a link) is resolved **once**, before the
  walk, and the result opened the same way; later swaps of the name change nothing.
* The root's real path, for the "inside the root" check of a file reached through a symlink,
  is read from the descriptor (``/proc/self/fd/N``), never from the name.
* :data:`HELD` is the process's table of held roots (keyed by the root as given, absolute).
  The walk (:func:`thunderline.classify.walk.iter_candidates`) adds to it; admission
  (:func:`thunderline.classify.admission.open_input`) looks a root up there and uses a
  duplicate of its descriptor. ``thunderline ingest`` releases every root when the run ends
  (:meth:`RootTable.release_all`); without that, at most :data:`MAX_HELD` roots stay open and
  the oldest is closed first. A root that is not held (an ingest event from elsewhere, a root
  closed as the oldest) is opened by name for that one file, by the same rule.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROC_FD = Path("/proc/self/fd")
#: Roots held open at once when nobody releases them (the oldest is closed first).
MAX_HELD = 64


def open_root(given: Path) -> tuple[int, Path]:
    """Open a root folder once: ``O_DIRECTORY | O_NOFOLLOW``.

    A root given as a symlink is resolved once and its target opened the same way. Returns the
    descriptor and the path it was opened by (the resolved one for a link).

    Raises:
        OSError: it cannot be opened (``ENOTDIR`` for a file, ``ELOOP`` for a link that
        changed again while it was being resolved).
    """
    try:
        return os.open(given, _ROOT_FLAGS), given
    except OSError as exc:
        # O_DIRECTORY | O_NOFOLLOW on a link: ENOTDIR on Linux (ELOOP elsewhere)
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR) or not os.path.islink(given):
            raise
    resolved = Path(os.path.realpath(given))  # the user gave a link: resolved once, here
    return os.open(resolved, _ROOT_FLAGS), resolved


def fd_path(fd: int) -> Path | None:
    """The real path of what ``fd`` is open on now (``None`` where /proc cannot tell)."""
    try:
        return Path(os.readlink(_PROC_FD / str(fd)))
    except OSError:
        return None


@dataclass
class HeldRoot:
    """One root folder held open.

    ``given`` is the path as the user named it, ``opened`` the path it was opened by (a link
    resolved once).
    """

    given: Path
    opened: Path
    fd: int

    def real(self, fd: int | None = None) -> Path:
        """The root's real path now, read from the descriptor: what "inside the root" means.

        If the folder was renamed since, this is its new name.
        """
        found = fd_path(self.fd if fd is None else fd)
        return found if found is not None else Path(os.path.realpath(self.opened))


class RootTable:
    """The roots this process holds open (thread safe: admission runs in worker threads)."""

    def __init__(self, limit: int = MAX_HELD) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._held: OrderedDict[str, HeldRoot] = OrderedDict()

    def hold(self, given: Path) -> HeldRoot:
        """Open ``given`` (:func:`open_root`) and hold it.

        A root held already under this name is used again while the name still leads to the same
        folder; a name that leads elsewhere now (the folder was removed and made again) is opened
        anew, and the descriptor held before is closed. Raises :class:`OSError`.
        """
        key = os.path.abspath(given)
        fd, opened = open_root(Path(key))
        root = HeldRoot(Path(key), opened, fd)
        closing: list[HeldRoot] = []
        with self._lock:
            held = self._held.get(key)
            if held is not None and os.path.samestat(os.fstat(held.fd), os.fstat(fd)):
                closing.append(root)  # the same folder: keep the descriptor held first
                root = held
            elif held is not None:
                closing.append(held)
            self._held[key] = root
            self._held.move_to_end(key)
            while len(self._held) > self.limit:
                closing.append(self._held.popitem(last=False)[1])
        for stale in closing:
            os.close(stale.fd)
        return root

    def dup(self, given: Path) -> tuple[HeldRoot, int] | None:
        """The held root named ``given`` and a duplicate of its descriptor; ``None`` if not held.

        The caller closes the duplicate; a release meanwhile cannot pull it away.
        """
        key = os.path.abspath(given)
        with self._lock:
            root = self._held.get(key)
            if root is None:
                return None
            return root, os.dup(root.fd)

    def release_all(self) -> None:
        """Close every held root (the end of an ingest run)."""
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        for root in held:
            os.close(root.fd)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)


#: The roots held by this process.
HELD = RootTable()
