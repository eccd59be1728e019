"""The ``/metrics`` ASGI app: the observability package's exposition, else the plain client's.

The observability package's exposition when present, else the plain Prometheus client
exposition of Thunderline's registry (``obs.metrics.REGISTRY``).
"""

from __future__ import annotations

import importlib
from typing import Any


def metrics_app() -> Any:
    """The ASGI app that serves ``/metrics`` in the Prometheus text format.

    ``thunderline.obs.exposition.metrics_app()`` when that module is installed, else
    ``prometheus_client.make_asgi_app`` over ``obs.metrics.REGISTRY``.
    """
    try:
        exposition = importlib.import_module("thunderline.obs.exposition")
    except ModuleNotFoundError:
        exposition = None
    if exposition is not None and hasattr(exposition, "metrics_app"):
        return exposition.metrics_app()
    from prometheus_client import make_asgi_app

    from thunderline.obs.metrics import REGISTRY

    return make_asgi_app(REGISTRY)
