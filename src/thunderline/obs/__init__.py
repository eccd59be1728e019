"""Observability: metrics (Prometheus, multi-process), exposition, traces, telemetry hooks, logs.

Public pieces: :mod:`~thunderline.obs.metrics` (every metric), :func:`metrics_app` (ASGI app for
``/metrics``), :func:`start_metrics_server`, :func:`observe` (what a long-running command
starts), :func:`configure_tracing`, :mod:`~thunderline.obs.telemetry` (hooks).
"""

from thunderline.obs import metrics, telemetry
from thunderline.obs.command import observe
from thunderline.obs.exposition import collect_registry, metrics_app, start_metrics_server
from thunderline.obs.tracing import configure_tracing

__all__ = [
    "collect_registry",
    "configure_tracing",
    "metrics",
    "metrics_app",
    "observe",
    "start_metrics_server",
    "telemetry",
]
