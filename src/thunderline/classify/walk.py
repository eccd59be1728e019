"""Expanding the paths given to ``thunderline ingest`` into candidate files.

Each candidate carries the root it was found under; admission later refuses anything whose
resolved path leaves that root. Symlinked directories are never followed (no loops); symlinked
files are yielded and checked at admission. Without ``recursive`` a directory contributes only
its direct entries; sub-directories are reported as skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Candidate:
    path: Path
    root: Path
    skipped: str | None = None  # why it will not be ingested (a directory, for instance)


def iter_candidates(paths: Sequence[Path], *, recursive: bool = False) -> Iterator[Candidate]:
    """Yield every file under ``paths`` in a stable (sorted) order."""
    for given in paths:
        given = Path(given)
        absolute = Path(os.path.abspath(given))
        if absolute.is_dir() and not absolute.is_symlink():
            yield from _walk(absolute, recursive=recursive)
        else:
            # a file (or anything else: admission decides); its root is its own folder
            yield Candidate(absolute, absolute.parent)


def _walk(root: Path, *, recursive: bool) -> Iterator[Candidate]:
    if not recursive:
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError:
            yield Candidate(root, root)  # admission reports the error
            return
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                yield Candidate(path, root, skipped="directory (use --recursive)")
            else:
                yield Candidate(path, root)
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        for name in dirnames:
            if (base / name).is_symlink():
                yield Candidate(base / name, root, skipped="symlinked directory (not followed)")
        for name in sorted(filenames):
            yield Candidate(base / name, root)
