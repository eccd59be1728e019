"""Expanding the paths given to ``thunderline ingest`` into candidate files, as a stream.

Each candidate carries the root it was found under; admission later refuses anything whose
real path leaves that root. Each root is opened **once** (:mod:`.roots`: ``O_DIRECTORY |
O_NOFOLLOW``, a root given as a symlink resolved once, here) and held for the run: the walk
lists it through that descriptor and admission opens every file relative to it, so swapping
the root's name for a symlink mid-run reaches nothing. A file argument's root is its folder,
held the same way. Candidates are yielded while the walk goes on (nothing is listed up front:
memory stays flat however many files there are, apart from the names of the one directory
being read, which are sorted for a stable order). The walk uses directory descriptors
(``scandir(fd)``, ``openat``), so folders deeper than ``PATH_MAX`` are walked too. Symlinked
directories below a root are never followed (no loops); symlinked files are yielded and
checked at admission. Without ``recursive`` a directory contributes only its direct entries;
sub-directories are reported as skipped.

A path that cannot be walked (a folder that cannot be listed, an argument that does not
exist) becomes a candidate with ``error`` set: the runtime turns it into one DLQ record, and
the walk goes on with the next path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from thunderline.classify.roots import HELD, RootTable, open_root

#: Why the walk skips a path (``Candidate.skipped``) and the short reason of each.
SYMLINKED_DIRECTORY = "symlinked directory (not followed)"
NOT_RECURSIVE = "directory (use --recursive)"
SKIP_REASONS = {SYMLINKED_DIRECTORY: "symlinked_directory", NOT_RECURSIVE: "directory"}


@dataclass(frozen=True)
class Candidate:
    """One path found by the walk, with the root it was found under and why it is skipped, if it is."""

    path: Path
    root: Path
    skipped: str | None = None  # why it will not be ingested (a directory, for instance)
    error: OSError | None = None  # why it could not be walked (becomes a DLQ record)

    @property
    def skip_reason(self) -> str | None:
        """The short reason of ``skipped`` (``symlinked_directory``, ``directory``)."""
        return None if self.skipped is None else SKIP_REASONS.get(self.skipped, "skipped")


def iter_candidates(
    paths: Sequence[Path], *, recursive: bool = False, roots: RootTable = HELD
) -> Iterator[Candidate]:
    """Yield every file under ``paths``, each directory's entries in sorted order.

    Every root is held open in ``roots`` (release them when the run ends).
    """
    for given in paths:
        absolute = Path(os.path.abspath(given))
        try:
            is_dir = absolute.is_dir()  # a link to a folder, given on purpose, is walked
        except OSError as exc:  # a name too long to stat, for instance
            yield Candidate(absolute, absolute.parent, error=exc)
            continue
        if is_dir:
            yield from _walk(absolute, roots, recursive=recursive)
        else:
            # a file (or anything else: admission decides); its root is its own folder
            with contextlib.suppress(OSError):  # admission says why it cannot be opened
                roots.hold(absolute.parent)
            yield Candidate(absolute, absolute.parent)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _walk(root: Path, roots: RootTable, *, recursive: bool) -> Iterator[Candidate]:
    try:
        roots.hold(root)
        found = roots.dup(root)
        top_fd = found[1] if found is not None else open_root(root)[0]
    except OSError as exc:
        yield Candidate(root, root, error=exc)
        return
    try:
        yield from _walk_dir(root, top_fd, root, recursive)
    finally:
        os.close(top_fd)


def _walk_dir(base: Path, dir_fd: int, root: Path, recursive: bool) -> Iterator[Candidate]:
    """One directory (by descriptor, so depth is unlimited): its files, then its folders."""
    files: list[str] = []
    folders: list[str] = []
    linked: list[str] = []
    try:
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.name)
                    elif entry.is_symlink() and entry.is_dir(follow_symlinks=True):
                        linked.append(entry.name)
                    else:
                        files.append(entry.name)
                except OSError:
                    files.append(entry.name)  # admission reports what it is
    except OSError as exc:
        yield Candidate(base, root, error=exc)
        return
    for name in sorted(linked):
        yield Candidate(base / name, root, skipped=SYMLINKED_DIRECTORY)
    if not recursive:
        merged = sorted([(n, False) for n in files] + [(n, True) for n in folders])
        for name, is_folder in merged:
            skipped = NOT_RECURSIVE if is_folder else None
            yield Candidate(base / name, root, skipped=skipped)
        return
    for name in sorted(files):
        yield Candidate(base / name, root)
    for name in sorted(folders):
        try:
            child_fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP or _is_link(name, dir_fd):  # a link since it was listed
                yield Candidate(base / name, root, skipped=SYMLINKED_DIRECTORY)
            else:
                yield Candidate(base / name, root, error=exc)
            continue
        try:
            yield from _walk_dir(base / name, child_fd, root, recursive)
        finally:
            os.close(child_fd)


def _is_link(name: str, dir_fd: int) -> bool:
    """Whether ``name`` in ``dir_fd`` is a symlink now.

    ``O_DIRECTORY | O_NOFOLLOW`` on a link fails with ``ENOTDIR`` on Linux, not ``ELOOP``.
    """
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False
