"""Shared harness of the admission race tests: a thread that swaps inputs while ingest runs.

Used by ``test_swap_race.py`` (symlinks and FIFOs), ``test_hardlinks.py`` (hard links) and
``test_root_swap.py`` (the root itself). Each swap is atomic (``os.replace`` from a staging
folder on the same file system), so admission sees either the old or the new name.
"""

from __future__ import annotations

import os
import random
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.report import RunReport
from thunderline.runtime import Runtime

#: Makes a replacement at ``tmp`` for victim ``name`` (a symlink, a FIFO, a hard link, bytes).
Replacement = Callable[[random.Random, Path, str], None]


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads often so the swapper interleaves with admission (makes the race likely)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


class Swapper(threading.Thread):
    """Replaces the first ``victims`` files of ``originals``, in a loop, by ``replace``'s result."""

    def __init__(
        self,
        root: Path,
        staging: Path,
        originals: dict[str, bytes],
        replace: Replacement,
        *,
        victims: int = 6,
        seed: int = 7,
    ) -> None:
        super().__init__(daemon=True)
        self.root, self.staging, self.originals = root, staging, originals
        self.replace, self.victims, self.seed = replace, victims, seed
        self.stop = threading.Event()
        self.swaps = 0

    def run(self) -> None:
        rng = random.Random(self.seed)
        names = sorted(self.originals)[: self.victims]
        n = 0
        while not self.stop.is_set():
            name = rng.choice(names)
            tmp = self.staging / f"t{n}"
            n += 1
            self.replace(rng, tmp, name)
            os.replace(tmp, self.root / name)
            self.swaps += 1

    def restore(self) -> None:
        """Stop swapping and put every original file back as a regular file of its bytes."""
        self.stop.set()
        self.join(10)
        for name, data in self.originals.items():
            target = self.root / name
            if not target.is_file() or target.is_symlink():
                target.unlink()
                target.write_bytes(data)


async def ingest(settings: Settings, candidates: Iterator[Candidate]) -> RunReport:
    """Ingest ``candidates`` once in a fresh runtime and return every terminal record."""
    report = RunReport()
    async with Runtime(settings, on_terminal=report.add) as runtime:
        await runtime.submit_files(candidates)
        await runtime.wait_idle(120)
    return report
