"""Native memory given back: the trim gate, the clock loop, and glibc's trim itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading

import pytest

from thunderline import malloc


class _Resident:
    """A fake resident size the test moves by hand, and a count of trims."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, mb: float) -> None:
        self.mb = mb
        self.trims = 0
        self.after_trim_mb: float | None = None
        monkeypatch.setattr(malloc, "resident_bytes", lambda: int(self.mb * 2**20))
        monkeypatch.setattr(malloc, "available", lambda: True)
        monkeypatch.setattr(malloc, "trim", self._trim)

    def _trim(self) -> bool:
        self.trims += 1
        if self.after_trim_mb is not None:
            self.mb = self.after_trim_mb
        return True


def test_trims_only_once_grown_past_the_threshold_since_the_last_trim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rss = _Resident(monkeypatch, 100)
    trimmer = malloc.Trimmer(min_growth_mb=32)
    assert trimmer.maybe_trim() is False  # the first call sets the floor
    rss.mb = 131
    assert not trimmer.due() and trimmer.maybe_trim() is False
    rss.mb, rss.after_trim_mb = 140, 105
    assert trimmer.due() and trimmer.maybe_trim() is True
    assert (rss.trims, trimmer.trims, trimmer.released) == (1, 1, 35 * 2**20)
    assert trimmer.floor == 105 * 2**20  # measured from where the trim left it
    rss.mb = 130
    assert trimmer.maybe_trim() is False and rss.trims == 1


def test_a_busy_process_trims_only_a_one_off_high_water_mark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rss = _Resident(monkeypatch, 100)
    trimmer = malloc.Trimmer(min_growth_mb=32)
    trimmer.maybe_trim()
    rss.mb = 100 + 32 * malloc.BUSY_FACTOR - 1
    assert trimmer.maybe_trim(busy=True) is False  # the next unit reuses it
    assert trimmer.maybe_trim(busy=False) is True  # idle: given back
    rss.mb = rss.mb + 32 * malloc.BUSY_FACTOR
    assert trimmer.maybe_trim(busy=True) is True and rss.trims == 2


def test_a_lower_resident_size_lowers_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    rss = _Resident(monkeypatch, 200)
    trimmer = malloc.Trimmer(min_growth_mb=32)
    trimmer.maybe_trim()
    rss.mb = 150  # the allocator gave memory back by itself
    assert trimmer.maybe_trim() is False and trimmer.floor == 150 * 2**20
    rss.mb = 185
    assert trimmer.maybe_trim() is True


def test_zero_trims_after_every_unit_and_negative_never(monkeypatch: pytest.MonkeyPatch) -> None:
    rss = _Resident(monkeypatch, 100)
    every = malloc.Trimmer(min_growth_mb=0)
    assert [every.maybe_trim() for _ in range(3)] == [True, True, True]
    never = malloc.Trimmer(min_growth_mb=-1)
    rss.mb = 10_000
    assert not never.enabled and not never.due() and never.maybe_trim() is False
    assert rss.trims == 3


def test_off_glibc_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(malloc, "_libc", lambda: None)
    assert malloc.available() is False and malloc.trim() is False
    trimmer = malloc.Trimmer(min_growth_mb=0)
    assert not trimmer.enabled and trimmer.maybe_trim() is False


def test_the_clock_loop_trims_in_a_thread_when_due(monkeypatch: pytest.MonkeyPatch) -> None:
    rss = _Resident(monkeypatch, 100)
    threads: list[str] = []
    trimmer = malloc.Trimmer(min_growth_mb=8)
    trimmer.maybe_trim()
    original = trimmer.maybe_trim

    def spy(*, busy: bool = False) -> bool:
        threads.append(threading.current_thread().name)
        return original(busy=busy)

    trimmer.maybe_trim = spy  # type: ignore[method-assign]

    async def go() -> None:
        task = asyncio.create_task(malloc.trim_while_running(trimmer, every_s=0.01))
        await asyncio.sleep(0.05)
        assert rss.trims == 0  # not grown: nothing to do
        rss.mb, rss.after_trim_mb = 120, 101
        for _ in range(200):
            await asyncio.sleep(0.01)
            if rss.trims:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert rss.trims == 1
    assert threads and threading.main_thread().name not in threads


_HEAP_SCRIPT = """
import ctypes, json
from thunderline import malloc
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
# glibc adapts its thresholds to the largest block freed: pin them (M_MMAP_THRESHOLD = -3,
# M_TRIM_THRESHOLD = -1) so that the frees below stay in the heap, as a busy process's do
libc.mallopt(-3, 1024 * 1024)
libc.mallopt(-1, 256 * 1024 * 1024)
size, count = 64 * 1024, 512  # below the mmap threshold: 32 MB from the heap
blocks = [libc.malloc(size) for _ in range(count)]
for block in blocks:
    ctypes.memset(block, 1, size)  # resident
keep = libc.malloc(size)  # above them: freeing them cannot shrink the heap's top
before = malloc.resident_bytes()
for block in blocks:
    libc.free(block)
freed = malloc.resident_bytes()
trimmed = malloc.trim()
print(json.dumps([before, freed, malloc.resident_bytes(), trimmed]))
"""


@pytest.mark.skipif(not malloc.available(), reason="needs glibc's malloc_trim")
def test_glibc_gives_freed_heap_back_that_free_alone_keeps() -> None:
    # in a child: the thresholds it pins would stay with the test process
    out = subprocess.run(
        [sys.executable, "-c", _HEAP_SCRIPT], capture_output=True, text=True, check=True
    )
    before, freed, after, trimmed = json.loads(out.stdout)
    assert before - freed < 8 * 2**20, "free() alone gave the heap back"
    assert trimmed is True
    assert freed - after > 24 * 2**20
