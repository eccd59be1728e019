"""One spaCy worker process as the pool sees it: a handle to start, feed, read and stop it.

Started as ``python -m thunderline.nlp.worker --ready ...`` (or a test's ``worker_command``);
the pool knows the pipeline is loaded when the ready line arrives (a missing pipeline is
:class:`~thunderline.nlp.errors.NlpModelMissingError`). Nothing here decides what to send or
what a failure means: that is the pool's (:mod:`thunderline.nlp.pool`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import sys
from typing import Final

import psutil

from thunderline.nlp.errors import (
    NlpCrashError,
    NlpModelMissingError,
    NlpParseError,
    NlpTimeoutError,
)
from thunderline.nlp.result import supports_batches
from thunderline.nlp.worker import EXIT_MODEL_MISSING
from thunderline.nlp.worker import model_missing_message as _missing_message
from thunderline.obs import multiprocess as obs_multiprocess

_log = logging.getLogger("thunderline.nlp.pool")
_wlog = logging.getLogger("thunderline.nlp.worker")

#: Longest answer line accepted from a worker (a 1 MB text gives a few MB of spans).
LINE_LIMIT: Final = 64 * 1024 * 1024


def default_worker_command() -> list[str]:
    """``python -m thunderline.nlp.worker`` with this interpreter."""
    return [sys.executable, "-m", "thunderline.nlp.worker"]


class WorkerProcess:
    """One worker process: start (ready handshake), send requests, read answers, stop or kill.

    Requests and answers are lines. Its stderr goes to the ``thunderline.nlp.worker`` log.
    """

    def __init__(
        self,
        argv: list[str],
        slot: int,
        *,
        model: str,
        startup_timeout_s: float = 120.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.argv = argv
        self.slot = slot
        self.model = model
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.proc: asyncio.subprocess.Process | None = None
        #: Documents answered since the process started.
        self.docs = 0
        #: Whether the worker speaks protocol 1.1 (batch lines).
        self.batches = False
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._pump: asyncio.Task[None] | None = None
        self._ps: psutil.Process | None = None

    @property
    def pid(self) -> int | None:
        """The process id (None before the first start)."""
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        """Is the process running?"""
        return self.proc is not None and self.proc.returncode is None

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the process has used, or None when it cannot be read."""
        if not self.alive or self.proc is None:
            return None
        try:
            if self._ps is None or self._ps.pid != self.proc.pid:
                self._ps = psutil.Process(self.proc.pid)
            times = self._ps.cpu_times()
        except (psutil.Error, OSError):
            return None
        return float(times.user + times.system)

    async def start(self) -> None:
        """Start the process and wait for its ready line.

        Raises:
            NlpModelMissingError: the spaCy pipeline is not installed.
            NlpTimeoutError, NlpCrashError, NlpParseError: no valid ready line.
        """
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
            line = await asyncio.wait_for(self.proc.stdout.readline(), self.startup_timeout_s)
        except TimeoutError:
            await self.kill()
            raise NlpTimeoutError(
                f"spaCy worker did not start within {self.startup_timeout_s}s"
            ) from None
        if not line:
            code = await self.proc.wait()
            await self._drain_pump()
            tail = " | ".join(self._stderr_tail)
            if code == EXIT_MODEL_MISSING:
                raise NlpModelMissingError(_missing_message(self.model))
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
        self.batches = supports_batches(hello.get("version"))
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
        """Queue one request line without draining.

        At most ``prefetch`` batches are normally pending, and waiting for the worker to read them
        could deadlock against an unread answer.
        """
        assert self.proc is not None and self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
            self.proc.stdin.write(line)

    async def read_answer(self) -> bytes:
        """The next answer line (``b""`` when the worker died)."""
        assert self.proc is not None and self.proc.stdout is not None
        return await self.proc.stdout.readline()

    async def kill(self) -> None:
        """SIGKILL and reap the process."""
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
                await asyncio.wait_for(self.proc.wait(), self.stop_timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.terminate()
                try:
                    await asyncio.wait_for(self.proc.wait(), self.stop_timeout_s)
                except TimeoutError:
                    await self.kill()
        obs_multiprocess.mark_process_dead(self.proc.pid)
        await self._drain_pump()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.proc.stdin.close()
