"""Faulty extractors for the isolation tests (loaded into a worker with ``--plugin``).

Each is registered under its own name and a made-up Magika label, so a test can send a job
naming it: ``hang`` never returns and never reports progress; ``busy`` reports progress
forever (only the total timeout stops it); ``crash`` kills its own process with SIGSEGV;
``balloon`` allocates memory until the worker's cap stops it; ``pid`` answers with the
worker's process id as its text (to see restarts).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from thunderline.extract.base import ExtractContext, Extractor, TextBuilder, result
from thunderline.extract.registry import register
from thunderline.extract.result import ExtractResult


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


for _name, _run in (
    ("hang", _hang),
    ("busy", _busy),
    ("crash", _crash),
    ("balloon", _balloon),
    ("pid", _pid),
):
    register(Extractor(_name, (f"fault-{_name}",), "stdlib", "text", "prose", _run))
