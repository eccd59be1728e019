"""Faulty extractors for the isolation tests (loaded into a worker with ``--plugin``).

Each is registered under its own name and a made-up Magika label, so a test can send a job
naming it: ``hang`` never returns and never reports progress; ``busy`` reports progress
forever (only the total timeout stops it); ``crash`` kills its own process with SIGSEGV;
``balloon`` allocates memory until the worker's cap stops it; ``pid`` answers with the
worker's process id as its text (to see restarts); ``invalid`` answers with a value out of
its bounds (a negative width), which only the supervisor's parse of the answer checks;
``fragment`` leaves ~48 MB of freed heap that glibc keeps (blocks freed between ones it
keeps alive, as a parser's cache does) and answers with the worker's RSS before its answer,
``rss`` answers with the worker's RSS (bytes) as its text.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from thunderline.extract.base import ExtractContext, Extractor, TextBuilder, result
from thunderline.extract.registry import register
from thunderline.extract.result import DocMetadata, ExtractResult


def _hang(path: Path, ctx: ExtractContext) -> ExtractResult:
    while True:
        time.sleep(0.05)


def _busy(path: Path, ctx: ExtractContext) -> ExtractResult:
    while True:
        ctx.progress()
        time.sleep(0.05)


def _crash(path: Path, ctx: ExtractContext) -> ExtractResult:
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


def _balloon(path: Path, ctx: ExtractContext) -> ExtractResult:
    hoard: list[bytearray] = []
    while True:
        hoard.append(bytearray(64 * 1024 * 1024))


def _pid(path: Path, ctx: ExtractContext) -> ExtractResult:
    builder = TextBuilder(ctx.max_text_bytes)
    builder.text(str(os.getpid()))
    return result(ctx, "pid", "stdlib", builder)


#: What ``fragment`` keeps alive between the blocks it frees (a parser's long-lived cache).
_kept: list[bytearray] = []


def _fragment(path: Path, ctx: ExtractContext) -> ExtractResult:
    blocks = []
    for n in range(768):  # 64 KB each, under glibc's mmap threshold: from the heap
        blocks.append(bytes([n % 251]) * (64 * 1024))  # written, so resident
        _kept.append(bytearray(2048))  # over pymalloc's 512 bytes: from the heap too
    blocks.clear()  # freed between live blocks: the heap's top cannot shrink
    return _rss(path, ctx)


def _rss(path: Path, ctx: ExtractContext) -> ExtractResult:
    from thunderline.malloc import resident_bytes

    builder = TextBuilder(ctx.max_text_bytes)
    builder.text(str(resident_bytes()))
    return result(ctx, "rss", "stdlib", builder)


def _invalid(path: Path, ctx: ExtractContext) -> ExtractResult:
    return result(ctx, "invalid", "stdlib", None, metadata=DocMetadata(width=-1))


for _name, _run in (
    ("hang", _hang),
    ("busy", _busy),
    ("crash", _crash),
    ("balloon", _balloon),
    ("pid", _pid),
    ("invalid", _invalid),
    ("fragment", _fragment),
    ("rss", _rss),
):
    register(Extractor(_name, (f"fault-{_name}",), "stdlib", "text", "prose", _run))
