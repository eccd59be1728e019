"""The ``/metrics`` ASGI app: the observability package's exposition when present, else the
plain Prometheus client exposition of this process's registry."""

from __future__ import annotations

import importlib
from typing import Any


def metrics_app() -> Any:
    try:
        exposition = importlib.import_module("thunderline.obs.exposition")
    except ModuleNotFoundError:
        exposition = None
    if exposition is not None and hasattr(exposition, "metrics_app"):
        return exposition.metrics_app()
    from prometheus_client import make_asgi_app

    return make_asgi_app()
