"""The HTTP connection protocol of ``thunderline serve``: uvicorn's h11 protocol plus two guards.

The guards stop slow or greedy clients before any request reaches the application.

- **Header-read timeout** (``TL_API_HEADER_TIMEOUT_S``): a request's headers (from the first
  moment the connection may send them: when it opens, or when the previous response ends)
  must be complete within the timeout, else the connection gets ``408`` and is closed. A
  client trickling one header line every few seconds (slowloris) no longer holds a connection
  for ever; request bodies have their own timeout (``TL_API_READ_TIMEOUT_S``).
- **Connections per client address** (``TL_API_MAX_CONNECTIONS_PER_CLIENT``): one more
  connection than the cap from the same address is answered ``503`` and closed at once.

Each refusal counts ``thunderline_api_connections_refused_total{reason}``
(``header_timeout`` or ``too_many_connections``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from thunderline.config import Settings
from thunderline.obs import metrics

_log = logging.getLogger("thunderline.api")
_HEADERS_END = b"\r\n\r\n"


def _response(status: str, extra: bytes = b"") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n".encode()
        + extra
        + b"\r\n"
    )


class GuardedH11Protocol(H11Protocol):
    """:class:`H11Protocol` with a header-read deadline and a per-address connection cap.

    Configure a subclass with :func:`guarded_protocol` (the limits are class attributes,
    uvicorn makes one instance per connection).
    """

    header_timeout_s: float = 10.0
    max_per_client: int = 64
    #: open connections per client address (all on the server's event loop)
    open_by_address: Counter[str] = Counter()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address: str | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, for a header end split across reads

    # ---- connection ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Refuse the connection when its client already holds the most connections allowed."""
        super().connection_made(transport)
        address = self.client[0] if self.client else None
        if address is not None:
            if self.open_by_address[address] >= self.max_per_client:
                metrics.API_CONNECTIONS_REFUSED.labels("too_many_connections").inc()
                _log.warning(
                    "refused a connection from %s: %d already open (TL_API_MAX_CONNECTIONS_PER_CLIENT)",
                    address,
                    self.open_by_address[address],
                )
                transport.write(_response("503 Service Unavailable", b"retry-after: 1\r\n"))
                transport.close()
                return
            self._address = address
            self.open_by_address[address] += 1
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Release the client's connection slot."""
        self._disarm_header_timer()
        if self._address is not None:
            self.open_by_address[self._address] -= 1
            if self.open_by_address[self._address] <= 0:
                del self.open_by_address[self._address]
            self._address = None
        super().connection_lost(exc)

    # ---- header deadline ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        """Feed bytes to the parser; a request whose headers are not complete in time is closed."""
        if self._header_timer is not None:
            seen = self._tail + data
            if _HEADERS_END in seen:
                self._disarm_header_timer()
            else:
                self._tail = seen[-(len(_HEADERS_END) - 1) :]
        super().data_received(data)

    def on_response_complete(self) -> None:
        """Arm the header timer again for the next request on a kept-alive connection."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request's headers get the same deadline

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._tail = b""
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        metrics.API_CONNECTIONS_REFUSED.labels("header_timeout").inc()
        _log.info(
            "closed a connection from %s: request headers not complete within %g s "
            "(TL_API_HEADER_TIMEOUT_S)",
            self._address or "?",
            self.header_timeout_s,
        )
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_response("408 Request Timeout"))
        self.transport.close()


def guarded_protocol(header_timeout_s: float, max_per_client: int) -> type[GuardedH11Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these limits (one server)."""
    return type(
        "ThunderlineH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout_s": header_timeout_s,
            "max_per_client": max_per_client,
            "open_by_address": Counter(),
        },
    )


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration ``thunderline serve`` runs ``app`` with (``options`` added)."""
    values: dict[str, Any] = {
        "log_level": settings.log.level.lower(),
        "h11_max_incomplete_event_size": max(settings.api.max_header_bytes * 4, 65536),
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": int(settings.shutdown_timeout_s),
        "server_header": False,
        "http": guarded_protocol(
            settings.api.header_timeout_s, settings.api.max_connections_per_client
        ),
    }
    values.update(options)
    return uvicorn.Config(app, **values)
