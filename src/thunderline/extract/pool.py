"""Supervised extraction workers (Apache Tika's pipes model).

:class:`ExtractPool` keeps ``workers`` slots; each slot runs one
``python -m thunderline.extract.worker`` process at a time (:mod:`.worker`), started when
first needed, and hands it one file at a time. For every file the supervisor enforces:

- a **progress timeout**: the worker must say something (a progress line or its answer)
  within ``progress_timeout_s``; a parser stuck in a loop or in native code is killed;
- a **total timeout per kind of file** (``timeouts[kind]``: text, document, pdf, mail,
  media, image, ocr);
- a **memory cap** per process (``RLIMIT_AS``, ``memory_mb``), set by the worker itself
  before it imports any parser;
- a **restart after N files** (``max_files``), and after any timeout, crash or memory error.

A file that hangs, crashes its worker or runs out of memory raises a typed error
(:class:`ExtractTimeoutError`, :class:`ExtractCrashError`, :class:`ExtractMemoryError`) with a
reason and the worker's last standard-error lines; nothing else is affected: the slot gets a
fresh process for the next file. No file is retried: a parser does the same thing again on the
same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from thunderline.extract.errors import (
    ExtractCrashError,
    ExtractionError,
    ExtractMemoryError,
    ExtractPoolClosedError,
    ExtractTimeoutError,
    ExtractWorkerError,
)
from thunderline.extract.result import ExtractResult, parse_result
from thunderline.extract.worker import EXIT_OUT_OF_MEMORY, PROTOCOL_VERSION
from thunderline.obs import metrics

_log = logging.getLogger("thunderline.extract.pool")

#: Total timeout per kind of file when the settings name none.
DEFAULT_TIMEOUTS: Mapping[str, float] = {
    "text": 30.0,
    "document": 120.0,
    "pdf": 300.0,
    "mail": 60.0,
    "media": 30.0,
    "image": 30.0,
    "ocr": 600.0,
}
#: Longest protocol line read (a result carries up to the text cap, JSON-escaped).
LINE_LIMIT = 64 * 1024 * 1024
#: Standard-error lines kept per worker for error reports.
STDERR_LINES = 40


@dataclass(frozen=True)
class PoolConfig:
    """How the pool runs its workers."""

    workers: int = 1
    memory_mb: int = 2048
    progress_timeout_s: float = 30.0
    timeouts: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    max_files: int = 5000
    start_timeout_s: float = 60.0
    plugins: tuple[str, ...] = ()
    #: ``TL_MALLOC_TRIM_MB``: a worker gives freed native memory back after a file once it
    #: has grown this much since its last trim (:mod:`thunderline.malloc`).
    malloc_trim_mb: float = 32.0

    def total_timeout(self, kind: str) -> float:
        """The total timeout of ``kind`` of file, in seconds (``text``'s, else 60, if unset)."""
        return float(self.timeouts.get(kind, self.timeouts.get("text", 60.0)))

    @classmethod
    def from_settings(cls, settings: Any) -> PoolConfig:
        """The pool's configuration from ``TL_EXTRACT_*`` settings (timeouts over the defaults)."""
        timeouts = dict(DEFAULT_TIMEOUTS)
        timeouts.update(settings.extract.timeouts)
        return cls(
            workers=settings.extract.workers,
            memory_mb=settings.extract.memory_mb,
            progress_timeout_s=settings.extract.progress_timeout_s,
            timeouts=timeouts,
            max_files=settings.extract.restart_after,
            malloc_trim_mb=settings.malloc_trim_mb,
        )


@dataclass(frozen=True)
class Job:
    """One file to extract."""

    id: str
    path: str
    extractor: str
    kind: str
    label: str = ""
    mime: str = ""
    max_text_bytes: int = 1_000_000
    max_parts: int = 0
    max_part_bytes: int = 0
    max_ratio: float = 100.0
    parts_dir: str | None = None
    ocr: bool = False
    ocr_engine: str = "rapidocr"
    ocr_languages: str = "eng"

    def wire(self) -> str:
        """The job as one JSON line, as the worker process reads it on its standard input."""
        body = {
            "id": self.id,
            "path": self.path,
            "extractor": self.extractor,
            "label": self.label,
            "mime": self.mime,
            "max_text_bytes": self.max_text_bytes,
            "max_parts": self.max_parts,
            "max_part_bytes": self.max_part_bytes,
            "max_ratio": self.max_ratio,
            "parts_dir": self.parts_dir,
            "ocr": self.ocr,
            "ocr_engine": self.ocr_engine,
            "ocr_languages": self.ocr_languages,
        }
        return json.dumps(body, ensure_ascii=False) + "\n"


class _Worker:
    """One slot: at most one live worker process."""

    def __init__(self, slot: int, command: Sequence[str]) -> None:
        self.slot = slot
        self.command = list(command)
        self.proc: asyncio.subprocess.Process | None = None
        self.files = 0
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._stderr_task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, timeout_s: float) -> None:
        self.stderr.clear()
        self.proc = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
            start_new_session=True,
        )
        self.files = 0
        self._stderr_task = asyncio.create_task(self._drain_stderr(self.proc))
        try:
            line = await asyncio.wait_for(self._readline(), timeout_s)
        except TimeoutError as exc:
            await self.kill()
            raise ExtractWorkerError(f"extraction worker did not start in {timeout_s:g} s") from exc
        try:
            hello = json.loads(line) if line else {}
        except json.JSONDecodeError:
            hello = {}
        if hello.get("type") != "ready" or hello.get("version") != PROTOCOL_VERSION:
            tail = self.tail()
            await self.kill()
            raise ExtractWorkerError(
                f"extraction worker did not start: {line[:200]!r}", details={"stderr": tail}
            )
        metrics.EXTRACT_WORKER_STARTS.inc()

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        with contextlib.suppress(Exception):
            while line := await proc.stderr.readline():
                self.stderr.append(line.decode("utf-8", "replace").rstrip())

    async def _readline(self) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        return await self.proc.stdout.readline()

    def tail(self) -> str:
        return "\n".join(list(self.stderr)[-STDERR_LINES:])

    async def kill(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 10)
        await self._end_stderr()
        self.proc = None

    async def _end_stderr(self) -> None:
        if self._stderr_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stderr_task, 2)
            self._stderr_task = None

    async def stop(self) -> None:
        """Close standard input and wait briefly; kill if it does not leave."""
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)
        await self.kill()

    async def run(self, job: Job, progress_s: float, total_s: float) -> dict[str, Any]:
        """Send ``job`` and wait for its answer under both timeouts."""
        assert self.proc is not None and self.proc.stdin is not None
        self.files += 1
        try:
            self.proc.stdin.write(job.wire().encode("utf-8", "surrogatepass"))
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise await self._died(job) from exc
        deadline = time.monotonic() + total_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise await self._timed_out(job, "total", total_s)
            wait = min(progress_s, remaining)
            try:
                line = await asyncio.wait_for(self._readline(), wait)
            except TimeoutError:
                which = "progress" if wait == progress_s else "total"
                raise await self._timed_out(
                    job, which, progress_s if which == "progress" else total_s
                ) from None
            except ValueError as exc:  # a line over LINE_LIMIT
                await self.kill()
                raise ExtractWorkerError(f"worker answer too long: {exc}") from exc
            if not line:
                raise await self._died(job)
            try:
                message = json.loads(line)
            except json.JSONDecodeError as exc:
                await self.kill()
                raise ExtractWorkerError(
                    f"extraction worker wrote a line that is not JSON: {line[:120]!r}"
                ) from exc
            if message.get("id") != job.id:
                continue
            kind = message.get("type")
            if kind == "progress":
                continue
            if kind in ("result", "error"):
                return dict(message)

    async def _timed_out(self, job: Job, which: str, limit: float) -> ExtractTimeoutError:
        tail = self.tail()
        await self.kill()
        what = "made no progress for" if which == "progress" else "ran past the total timeout of"
        return ExtractTimeoutError(
            f"{job.extractor} extractor {what} {limit:g} s ({job.kind} file); worker killed",
            details={"timeout": which, "limit_s": limit, "kind": job.kind, "stderr": tail},
        )

    async def _died(self, job: Job) -> ExtractWorkerError:
        proc = self.proc
        code: int | None = None
        if proc is not None:
            with contextlib.suppress(Exception):
                code = await asyncio.wait_for(proc.wait(), 10)
        await self._end_stderr()
        tail = self.tail()
        self.proc = None
        details = {"exit_code": code, "extractor": job.extractor, "stderr": tail}
        if code == EXIT_OUT_OF_MEMORY or "MemoryError" in tail:
            return ExtractMemoryError(
                f"{job.extractor} extractor ran out of memory (worker exit {code})", details=details
            )
        how = f"exit {code}"
        if code is not None and code < 0:
            try:
                how = f"signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"signal {-code}"
        return ExtractCrashError(
            f"extraction worker died holding the file ({how}, {job.extractor} extractor)",
            details=details,
        )


def worker_command(
    memory_mb: int, plugins: Sequence[str] = (), trim_mb: float | None = None
) -> list[str]:
    """The command line of one worker process (``trim_mb`` None: the worker's default)."""
    command = [sys.executable, "-m", "thunderline.extract.worker", "--memory-mb", str(memory_mb)]
    if trim_mb is not None:
        command += ["--trim-mb", repr(trim_mb)]
    for plugin in plugins:
        command += ["--plugin", plugin]
    return command


class ExtractPool:
    """The supervised workers. ``await pool.extract(job)`` -> :class:`ExtractResult`."""

    def __init__(self, config: PoolConfig, command: Sequence[str] | None = None) -> None:
        self.config = config
        self.command = list(
            command or worker_command(config.memory_mb, config.plugins, config.malloc_trim_mb)
        )
        self._slots: asyncio.Queue[_Worker] | None = None
        self._all: list[_Worker] = []
        self._closed = False

    def _queue(self) -> asyncio.Queue[_Worker]:
        if self._slots is None:
            self._slots = asyncio.Queue()
            self._all = [_Worker(i, self.command) for i in range(max(self.config.workers, 1))]
            for worker in self._all:
                self._slots.put_nowait(worker)
        return self._slots

    async def start(self) -> None:
        """Start every worker now (optional: workers start at their first file)."""
        slots = self._queue()
        taken = [await slots.get() for _ in self._all]
        try:
            await asyncio.gather(
                *(w.start(self.config.start_timeout_s) for w in taken if not w.alive)
            )
        finally:
            for worker in taken:
                slots.put_nowait(worker)

    async def extract(self, job: Job) -> ExtractResult:
        """Extract one file in a worker; raises the typed errors of :mod:`.errors`."""
        if self._closed:
            raise ExtractPoolClosedError("the extraction pool is closed")
        slots = self._queue()
        worker = await slots.get()
        started = time.perf_counter()
        try:
            if self._closed:
                raise ExtractPoolClosedError("the extraction pool is closed")
            if not worker.alive:
                await worker.start(self.config.start_timeout_s)
            answer = await worker.run(
                job, self.config.progress_timeout_s, self.config.total_timeout(job.kind)
            )
            if answer.get("reason") == "out_of_memory":  # the worker exits after answering
                await worker.kill()
                metrics.EXTRACT_WORKER_RESTARTS.labels("out_of_memory").inc()
        except ExtractWorkerError as exc:
            metrics.EXTRACT_ERRORS.labels(job.extractor, exc.reason).inc()
            metrics.EXTRACT_WORKER_RESTARTS.labels(exc.reason).inc()
            raise
        finally:
            if worker.alive and worker.files >= self.config.max_files:
                await worker.stop()
                metrics.EXTRACT_WORKER_RESTARTS.labels("max_files").inc()
            slots.put_nowait(worker)
        metrics.EXTRACT_DURATION.labels(job.extractor).observe(time.perf_counter() - started)
        if answer["type"] == "error":
            reason = str(answer.get("reason") or "extraction")
            metrics.EXTRACT_ERRORS.labels(job.extractor, reason).inc()
            if reason == "out_of_memory":
                raise ExtractMemoryError(
                    f"{job.extractor} extractor ran out of memory",
                    details={"extractor": job.extractor},
                )
            raise ExtractionError(
                str(answer.get("message") or "extraction failed"),
                details={"extractor": job.extractor, "error_type": answer.get("error_type")},
            )
        found = answer.get("result")
        if not isinstance(found, dict):
            raise ExtractWorkerError("extraction worker sent a result that is not an object")
        try:
            return parse_result(found)
        except ValidationError as exc:
            # The worker builds its result unvalidated (cheap dataclasses): a value out of its
            # bounds is this extractor's failure on this file, as when the worker validated it.
            metrics.EXTRACT_ERRORS.labels(job.extractor, "extraction").inc()
            raise ExtractionError(
                f"{job.extractor} extractor returned an invalid result: {exc}"[:2000],
                details={"extractor": job.extractor, "error_type": "ValidationError"},
            ) from exc

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (tests, ``doctor``)."""
        return [w.proc.pid for w in self._all if w.proc is not None and w.alive]

    async def close(self) -> None:
        """Stop every worker process; the pool takes no more jobs."""
        self._closed = True
        await asyncio.gather(*(w.stop() for w in self._all), return_exceptions=True)


__all__ = ["DEFAULT_TIMEOUTS", "ExtractPool", "Job", "PoolConfig", "worker_command"]
