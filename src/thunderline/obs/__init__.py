"""Observability: metrics (Prometheus), telemetry hooks and structured logs."""

from thunderline.obs import metrics, telemetry

__all__ = ["metrics", "telemetry"]
