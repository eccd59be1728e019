"""A loopback TCP proxy the test owns: cut a client's connection to a shared server on purpose.

``TcpProxy(("127.0.0.1", 5672))`` listens on a free 127.0.0.1 port and pipes every accepted
connection to the upstream server. ``cut()`` closes every open connection and refuses new ones
until ``restore()``; ``freeze()`` keeps every connection open but forwards nothing until
``thaw()`` (a server that accepts and never answers); the shared server itself is never touched. It runs its own event loop in
a thread, so it works for in-process asyncio clients and for subprocesses alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self.accepted = 0
        self.refused = 0
        self._blocked = False
        self._frozen = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)

    @classmethod
    def for_url(cls, url: str, default_port: int = 5672) -> TcpProxy:
        """A proxy to the server of ``url`` (``scheme://user:password@host:port/path``)."""
        parts = urlsplit(url)
        return cls((parts.hostname or "127.0.0.1", parts.port or default_port))

    def via(self, url: str) -> str:
        """``url`` with its host and port replaced by this proxy's (credentials and path kept)."""
        parts = urlsplit(url)
        netloc = f"{parts.username}:{parts.password}@127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    # ---- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> TcpProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        # stopped: finish the pipes (their sockets are aborted), then close the loop itself
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self._close_all()

    def _call(self, coro: object) -> None:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        future.result(10)

    # ---- faults -------------------------------------------------------------------------
    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self._blocked = True
        self._call(self._close_all())

    def restore(self) -> None:
        self._blocked = False

    def cut_for(self, seconds: float) -> None:
        """Cut, wait ``seconds`` (new connections refused all along), restore."""
        self.cut()
        time.sleep(seconds)
        self.restore()

    def freeze(self) -> None:
        """Keep every connection open, and forward nothing either way until :meth:`thaw`."""
        self._frozen = True

    def thaw(self) -> None:
        self._frozen = False

    @property
    def open_connections(self) -> int:
        return len(self._writers) // 2

    async def _close_all(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    # ---- piping -------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._blocked:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        self._writers.update((writer, up_writer))
        with contextlib.suppress(asyncio.CancelledError):  # the proxy is shutting down
            await asyncio.gather(
                self._pipe(reader, up_writer),
                self._pipe(up_reader, writer),
                return_exceptions=True,
            )
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                while self._frozen:  # held, not lost: forwarded once thawed
                    await asyncio.sleep(0.05)
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
