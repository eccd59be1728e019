"""What every long-running command does for observability, in one context manager.

``ingest`` uses it today; the ``worker`` and ``serve`` commands call it the same way::

    with observe(settings, metrics_port=port):
        ...run...

It serves ``/metrics`` when a port is given (option or ``TL_METRICS_PORT``) and exports
traces when ``TL_OTLP_ENDPOINT`` is set, flushing them at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thunderline.obs.exposition import MetricsServer, start_metrics_server
from thunderline.obs.tracing import configure_tracing, uninstall

if TYPE_CHECKING:
    from thunderline.config import Settings


@dataclass
class Observed:
    """What :func:`observe` started (``metrics`` is ``None`` without a port)."""

    metrics: MetricsServer | None
    tracing: bool


@contextlib.contextmanager
def observe(settings: Settings, *, metrics_port: int | None = None) -> Iterator[Observed]:
    """Metrics server and trace export for the duration of a command."""
    port = metrics_port if metrics_port is not None else settings.metrics.port
    server = start_metrics_server(port, settings.metrics.addr) if port is not None else None
    provider = configure_tracing(settings)
    try:
        yield Observed(server, provider is not None)
    finally:
        if provider is not None:
            uninstall()
            provider.shutdown()
        if server is not None:
            server.close()
