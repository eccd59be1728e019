"""Exposing the metrics: the registry to read, an ASGI app, and a small HTTP server.

- :func:`collect_registry`: the registry a scrape reads. In single-process mode it is
  :data:`thunderline.obs.metrics.REGISTRY`; in multiprocess mode a registry whose
  ``MultiProcessCollector`` sums the sample files of every process of the tree. Both carry the
  ``process_*`` metrics (CPU, memory, open files, start time) of the process serving
  ``/metrics`` -- prometheus_client leaves them out of multiprocess mode, where a scrape would
  otherwise have none.
- :func:`add_collector`: a collector computed at scrape time (the open-DLQ gauge of ``serve``),
  added to whichever registry is exposed.
- :func:`metrics_app`: an ASGI app serving the text exposition (the HTTP service mounts it at
  ``/metrics``).
- :func:`start_metrics_server` / :func:`serve_metrics`: a background HTTP server for the
  long-running commands (``ingest --metrics-port``, later ``worker`` and ``serve``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
    make_asgi_app,
    start_http_server,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from thunderline.errors import ConfigError
from thunderline.obs import metrics, multiprocess

_log = logging.getLogger("thunderline.obs")

ASGIApp = Callable[..., Any]


_multiprocess_registries: dict[str, CollectorRegistry] = {}
_process_registered: set[int] = set()


def _add_process_collectors(registry: CollectorRegistry) -> None:
    if id(registry) not in _process_registered:
        ProcessCollector(registry=registry)
        _process_registered.add(id(registry))


def collect_registry() -> CollectorRegistry:
    """The registry to expose: this process's, or the sum over the process tree.

    The sum adds up one registry per process of the tree. Either way it has the exposing process's
    ``process_*`` metrics.
    """
    folder = multiprocess.directory()
    if folder is None:
        _add_process_collectors(metrics.REGISTRY)
        return metrics.REGISTRY
    registry = _multiprocess_registries.get(str(folder))
    if registry is None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(folder))
        _add_process_collectors(registry)
        _multiprocess_registries[str(folder)] = registry
    return registry


def render() -> bytes:
    """The Prometheus text exposition of every Thunderline metric (all processes)."""
    return generate_latest(collect_registry())


def add_collector(collector: Collector) -> Callable[[], None]:
    """Expose ``collector`` (called at each scrape); returns the function that removes it."""
    registry = collect_registry()
    registry.register(collector)
    return lambda: registry.unregister(collector)


def metrics_app() -> ASGIApp:
    """An ASGI app answering every GET with the Prometheus text exposition."""
    app: ASGIApp = make_asgi_app(registry=collect_registry())
    return app


@dataclass
class MetricsServer:
    """A running exposition server (``port`` is the bound port, useful with port 0)."""

    addr: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        """The scrape address of this exporter."""
        return f"http://{self.addr}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and wait for the server thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread (port 0 picks a free port).

    Raises:
        ConfigError: the address cannot be bound (port in use, unknown address).
    """
    try:
        server, thread = start_http_server(port, addr=addr, registry=collect_registry())
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}",
            details={"addr": addr, "port": port},
        ) from exc
    bound = int(server.server_port)
    _log.info("metrics on http://%s:%d/metrics", addr, bound)
    return MetricsServer(addr, bound, server, thread)


@contextlib.contextmanager
def serve_metrics(port: int | None, addr: str = "127.0.0.1") -> Iterator[MetricsServer | None]:
    """Context manager for commands: a server while the block runs, nothing when port is None."""
    if port is None:
        yield None
        return
    server = start_metrics_server(port, addr)
    try:
        yield server
    finally:
        server.close()
