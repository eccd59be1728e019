"""OpenTelemetry traces: one span per stage and batch, in the trace of the correlation id.

Off by default and free when off: nothing is imported and no telemetry handler is attached
unless :func:`configure_tracing` finds ``TL_OTLP_ENDPOINT`` set (or a test installs its own
provider with :func:`install`). When on, a handler of :mod:`thunderline.obs.telemetry` turns the
engine's ``("thunderline", "stage", <stage>, "start" | "error" | "stop")`` events into spans:

- For each batch, one span ``stage <name>`` per correlation id in the batch, with the
  attributes ``thunderline.stage``, ``thunderline.correlation_id``, ``thunderline.batch.size``
  (events in the batch), ``thunderline.batch.events`` (events of this correlation id) and
  ``thunderline.errors``; status ERROR when an event of the batch failed.
- The trace id is derived from the correlation id (first 16 bytes of its SHA-256), under a
  remote parent whose span id is derived the same way: every stage of one ingest, in any
  process (the scale-out workers too), lands in one trace without carrying a trace context
  through the bus.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from thunderline.obs import telemetry

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from thunderline.config import Settings

_log = logging.getLogger("thunderline.obs")

HANDLER_ID = "thunderline.tracing"
TRACER_NAME = "thunderline"

_open: contextvars.ContextVar[list[Span] | None] = contextvars.ContextVar(
    "thunderline_open_spans", default=None
)


def trace_ids(correlation_id: str) -> tuple[int, int]:
    """(trace id, parent span id) derived from a correlation id (never zero)."""
    digest = hashlib.sha256(correlation_id.encode("utf-8", "surrogateescape")).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id


def _correlation_ids(events: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events:
        cid = getattr(event, "correlationid", None) or getattr(event, "id", None) or "unknown"
        counts[str(cid)] = counts.get(str(cid), 0) + 1
    return counts


class StageSpans:
    """The telemetry handler: opens spans on ``start``, marks ``error``, closes on ``stop``."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def __call__(
        self, name: tuple[str, ...], measurements: Mapping[str, float], meta: Mapping[str, Any]
    ) -> None:
        """Turn a stage telemetry event into the start or end of its span."""
        if len(name) != 4 or name[:2] != ("thunderline", "stage"):
            return
        phase = name[3]
        if phase == "start":
            self._start(name[2], meta)
        elif phase == "error":
            for span in _open.get() or []:
                span.add_event("error", {"thunderline.reason": str(meta.get("reason", ""))})
        elif phase == "stop":
            self._stop(measurements)

    def _start(self, stage: str, meta: Mapping[str, Any]) -> None:
        from opentelemetry import trace

        events = meta.get("events") or []
        spans: list[Span] = []
        for cid, count in _correlation_ids(events).items():
            trace_id, parent_id = trace_ids(cid)
            parent = trace.set_span_in_context(
                trace.NonRecordingSpan(
                    trace.SpanContext(
                        trace_id=trace_id,
                        span_id=parent_id,
                        is_remote=True,
                        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
                    )
                )
            )
            spans.append(
                self.tracer.start_span(
                    f"stage {stage}",
                    context=parent,
                    attributes={
                        "thunderline.stage": stage,
                        "thunderline.correlation_id": cid,
                        "thunderline.batch.size": int(meta.get("count", len(events))),
                        "thunderline.batch.events": count,
                    },
                )
            )
        _open.set(spans)

    def _stop(self, measurements: Mapping[str, float]) -> None:
        from opentelemetry.trace import Status, StatusCode

        spans = _open.get() or []
        _open.set(None)
        errors = int(measurements.get("errors", 0))
        for span in spans:
            span.set_attribute("thunderline.errors", errors)
            if errors:
                span.set_status(Status(StatusCode.ERROR, f"{errors} event(s) failed"))
            span.end()


def install(provider: TracerProvider) -> None:
    """Turn stage spans on with ``provider`` (tests pass one with an in-memory exporter)."""
    telemetry.attach(HANDLER_ID, StageSpans(provider.get_tracer(TRACER_NAME)))


def uninstall() -> None:
    """Detach the tracing handler from telemetry."""
    telemetry.detach(HANDLER_ID)


def configure_tracing(settings: Settings) -> TracerProvider | None:
    """OTLP/HTTP export when ``settings.otlp_endpoint`` is set; otherwise nothing at all.

    Returns the provider (call ``shutdown()`` on it at exit to flush), or ``None`` when off.
    """
    endpoint = settings.otlp_endpoint
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "thunderline"}))
    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    install(provider)
    _log.info("tracing: exporting spans to %s", url)
    return provider
