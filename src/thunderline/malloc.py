"""Native memory given back: glibc's ``malloc_trim`` once a process holds enough freed heap.

glibc keeps memory that C code (spaCy/thinc, ONNX Runtime, the parsers) frees inside its heap
for reuse instead of returning it to the OS: only the top of each arena is given back, and
its mmap threshold rises to the largest block freed so far, so later large buffers come from
the heap too. A process whose work needs a few hundred MB for a moment (one spaCy batch, one
large PDF) therefore keeps its high-water mark as resident memory long after. Measured on
this project's spaCy worker (docs/ARCHITECTURE.md, "Native memory"): a batch peaks at
340-380 MB, then the worker stays at 366 MB with the default allocator and at 164 MB after
``malloc_trim(0)``, which releases free pages anywhere in every arena (``madvise``), not only
at the top.

Trimming costs a walk of the free lists and, later, page faults when the memory is used again,
so :class:`Trimmer` trims only when the resident size (``/proc/self/statm``, one read) has
grown by at least ``min_growth_mb`` since its last trim: a process whose work is small never
pays, a process that just freed a large batch gives it back. Off glibc (musl, macOS) every
call is a no-op returning ``False``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import os
import sys
import threading
from typing import Final

#: ``TL_MALLOC_TRIM_MB``'s default: resident growth since the last trim that triggers one.
DEFAULT_MIN_GROWTH_MB: Final = 32.0
#: A busy process (its next unit of work already waiting, which will reuse the memory) trims
#: only once it has grown this many times ``min_growth_mb``: its one-off high-water marks.
BUSY_FACTOR: Final = 4
_PAGE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, when this process runs on it (None elsewhere: no ``malloc_trim``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = lib.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lib


def available() -> bool:
    """Does this process's C library have ``malloc_trim`` (glibc)?"""
    return _libc() is not None


def trim() -> bool:
    """``malloc_trim(0)``: give every free page of every arena back to the OS.

    Returns:
        True when memory was released, False when none was or the C library has no trim.
    """
    lib = _libc()
    if lib is None:
        return False
    return bool(lib.malloc_trim(0))


def resident_bytes() -> int:
    """This process's resident set size (``/proc/self/statm``; 0 when it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class Trimmer:
    """Trims this process's heap after a unit of work, when it has grown enough since the last.

    Args:
        min_growth_mb: Resident growth (MB) since the last trim (or since the first call)
            that triggers a trim; 0 trims after every unit of work, a negative value never
            trims.

    Thread-safe: concurrent callers trim at most once.
    """

    def __init__(self, min_growth_mb: float = DEFAULT_MIN_GROWTH_MB) -> None:
        self.min_growth = int(min_growth_mb * 2**20)
        self.enabled = min_growth_mb >= 0 and available()
        #: Resident bytes after the last trim (the first call sets it without trimming).
        self.floor: int | None = None
        #: Trims made and the bytes they gave back (resident before - after, summed).
        self.trims = 0
        self.released = 0
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether :meth:`maybe_trim` would trim now (one ``statm`` read, no lock, no trim)."""
        if not self.enabled:
            return False
        floor = self.floor
        return floor is None or resident_bytes() - floor >= self.min_growth

    def maybe_trim(self, *, busy: bool = False) -> bool:
        """Trim when resident memory is ``min_growth_mb`` above the floor; True if it did.

        Args:
            busy: More work is already waiting and will reuse the freed memory: trim only
                once grown :data:`BUSY_FACTOR` times as much (a one-off high-water mark).
        """
        if not self.enabled:
            return False
        threshold = self.min_growth * (BUSY_FACTOR if busy else 1)
        with self._lock:
            now = resident_bytes()
            if self.floor is None or now < self.floor:
                self.floor = now
                if threshold > 0:
                    return False
            if now - self.floor < threshold:
                return False
            trim()
            after = resident_bytes()
            self.trims += 1
            self.released += max(now - after, 0)
            self.floor = after
            return True


#: How often :func:`trim_while_running` looks at the resident size.
CHECK_EVERY_S: Final = 1.0


async def trim_while_running(trimmer: Trimmer, every_s: float = CHECK_EVERY_S) -> None:
    """Until cancelled: every ``every_s`` seconds, trim in a thread when :meth:`Trimmer.due`.

    For a process whose work runs on many threads (the runtime): no unit of work ends in one
    place, so the resident size is looked at on a clock instead (one ``statm`` read a second).
    """
    if not trimmer.enabled:
        return
    while True:
        await asyncio.sleep(every_s)
        if trimmer.due():
            await asyncio.to_thread(trimmer.maybe_trim)
