"""HTTP request metrics for ``thunderline serve``: a pure ASGI middleware, and the open-DLQ gauge.

Per request: ``thunderline_http_requests_total{method, route, status}``,
``thunderline_http_request_duration_seconds{method, route}`` (request to the last byte of the
response) and ``thunderline_http_requests_in_progress{method}``. ``route`` is the **template**
the router matched (``/v1/voxels/{voxel_id}``), never the raw path, so the label set stays
bounded; a request no route matched is ``unmatched`` (404s of scanners do not add series).

Why our own middleware and not prometheus-fastapi-instrumentator: the label set and the
registry are ours (multiprocess mode included) and it is ~60 lines; a pure ASGI middleware also
avoids ``BaseHTTPMiddleware``'s per-request task and body wrapping. Its cost is measured by
``benchmarks/http_metrics.py`` (the same app with and without it).

The open-DLQ gauge ``thunderline_dlq_open`` is computed at scrape time from the outcome store
(one ``COUNT ... GROUP BY status``), so it is right whichever process dead-lettered the record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from thunderline.obs import metrics
from thunderline.obs.exposition import add_collector

_log = logging.getLogger("thunderline.api.metrics")
ASGIApp = Any
UNMATCHED = "unmatched"


def route_of(scope: dict[str, Any]) -> str:
    """The template of the route the router matched (Starlette puts it in the scope)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    return UNMATCHED


class HttpMetrics:
    """Counts and times every HTTP request (other ASGI scopes pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """ASGI entry: time the request and count it by route template, method and status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        method = method if method in metrics.HTTP_METHODS else "other"
        status = 500  # what the client sees if the app raises before answering
        started = time.perf_counter()
        in_progress = metrics.HTTP_IN_PROGRESS.labels(method)
        in_progress.inc()

        async def counted_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            in_progress.dec()
            route = route_of(scope)
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)


class OpenDlqCollector(Collector):
    """``thunderline_dlq_open``: open DLQ records in the outcome store, read at each scrape.

    One collector per process (a registry refuses a second family of the same name); each
    running app attaches its count function for its lifetime (:meth:`attach`). Apps of one
    process share their outcome store in practice, so the largest count is reported (tests
    may run two servers side by side).
    """

    def __init__(self) -> None:
        self._sources: dict[int, Callable[[], int | None]] = {}
        self._next = 0
        self._registered = False

    def attach(self, count: Callable[[], int | None]) -> Callable[[], None]:
        """Count with ``count`` until the returned function is called."""
        if not self._registered:
            add_collector(self)
            self._registered = True
        self._next += 1
        key = self._next
        self._sources[key] = count
        return lambda: self._sources.pop(key, None) and None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric this collector exports (for registration without a collect)."""
        yield GaugeMetricFamily("thunderline_dlq_open", "Open (not replayed) DLQ records.")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The open-DLQ gauge, read from every registered count at scrape time."""
        family = GaugeMetricFamily("thunderline_dlq_open", "Open (not replayed) DLQ records.")
        values: list[int] = []
        for count in list(self._sources.values()):
            try:
                value = count()
            except Exception as exc:  # a scrape must not fail because the database is away
                _log.warning("open-DLQ gauge: cannot count: %s", exc)
                continue
            if value is not None:
                values.append(value)
        if values:
            family.add_metric([], float(max(values)))
        yield family


#: The process's open-DLQ collector (``create_app`` attaches each app's count).
OPEN_DLQ = OpenDlqCollector()
