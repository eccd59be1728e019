"""Every Prometheus metric Thunderline exports, declared once (ARCHITECTURE §7).

Labels are few and bounded: stage names, Magika groups, model names, event types, error reasons.
Never ids, paths, file names or free text (``tests/integration/obs`` enumerates the label sets
after a real run and fails on an unbounded value). All metrics live in :data:`REGISTRY` so tests
and the CLI can read them without touching the global default registry.

**Several processes.** When work is recorded in more than one process (the spaCy workers, the
scale-out workers), prometheus_client's multiprocess mode must be chosen *before the first
metric is constructed*, so this module decides it at import (the one place that reads the
environment directly, see :mod:`thunderline.obs.multiprocess`): with ``TL_METRICS_MULTIPROC_DIR``
set, the first process (the one that finds no ``PROMETHEUS_MULTIPROC_DIR`` yet) wipes that
folder and exports ``PROMETHEUS_MULTIPROC_DIR`` so every child it starts writes its samples
there; :func:`thunderline.obs.exposition.collect_registry` then sums them. Each gauge says how
it is combined across processes (``multiprocess_mode``).

**Buckets** come from latencies measured on this machine (``benchmarks/latencies.py``: every
observation of an ingest of the 77 peer files x3 with ONNX on, on a loaded 2-core machine):
Magika p50 15 ms / p99 38 ms per file, voxel build p50 3 ms / p99 7 ms, ONNX run p50 15 ms /
max 20 ms, spaCy p50 0.12 s / p99 0.94 s. Each histogram is dense (about 1.5x steps) from its
p50 to a few times its p99, so ``histogram_quantile`` interpolates p50/p95/p99 within one narrow
bucket, and coarse above (to catch the "2x baseline" and "over budget" alerts and timeouts).
The ONNX budget of the alert rules (0.1 s) is a bucket edge, so "p99 over budget" is exact.

**Under load** (issue 24: a 2-core machine fed 88 files at once) the per-file times are
dominated by queueing: 32 of 88 Magika observations were above the old top bucket (2.5 s), so
p95/p99 panels sat flat at 2.5 s. Every latency histogram therefore goes up to 60 s
(:data:`SLOW_TAIL`: 5, 10, 20, 30, 60 s), NLP and text extraction included.
"""

from __future__ import annotations

from typing import Any, Final

from thunderline import errors as _errors
from thunderline.obs import multiprocess

multiprocess.configure_from_environ()  # before any metric exists

from prometheus_client import (  # noqa: E402  (multiprocess mode is chosen first)
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

REGISTRY = CollectorRegistry(auto_describe=True)

#: Coarse upper edges shared by every latency histogram: latencies under load reach tens of
#: seconds (queueing), and a quantile above the top edge is reported as that edge.
SLOW_TAIL: Final = (5.0, 10.0, 20.0, 30.0, 60.0)


def _with_tail(edges: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(sorted({*edges, *SLOW_TAIL}))


#: Generic buckets for whole batches (any stage, 1 ms .. 60 s).
BATCH_BUCKETS: Final = _with_tail(
    (
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
        10.0,
        30.0,
    )
)
#: Magika per file: measured p50 15 ms, p99 38 ms.
MAGIKA_BUCKETS: Final = _with_tail(
    (
        0.002,
        0.005,
        0.0075,
        0.01,
        0.015,
        0.02,
        0.03,
        0.04,
        0.06,
        0.08,
        0.12,
        0.25,
        0.5,
        1.0,
        2.5,
    )
)
#: ONNX Runtime run per call: measured p50 15 ms, max 20 ms; 0.1 s is the alert budget.
ONNX_BUCKETS: Final = _with_tail(
    (
        0.001,
        0.002,
        0.005,
        0.0075,
        0.01,
        0.015,
        0.02,
        0.03,
        0.05,
        0.075,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
    )
)
#: spaCy per document (seen by the pool): measured p50 0.12 s, p99 0.94 s; timeouts at 30 s.
SPACY_BUCKETS: Final = _with_tail(
    (
        0.01,
        0.025,
        0.05,
        0.075,
        0.1,
        0.15,
        0.25,
        0.4,
        0.6,
        0.8,
        1.0,
        1.5,
        2.5,
        5.0,
        10.0,
        30.0,
    )
)
#: Voxel build and persist per voxel: measured p50 3 ms, p99 7 ms.
VOXEL_BUCKETS: Final = _with_tail(
    (
        0.0005,
        0.001,
        0.002,
        0.003,
        0.004,
        0.006,
        0.008,
        0.012,
        0.02,
        0.05,
        0.1,
        0.25,
        1.0,
        5.0,
    )
)

#: The Magika groups a label may carry; anything else is counted as ``other``.
FILE_GROUPS: Final = frozenset(
    {
        "application",
        "archive",
        "audio",
        "code",
        "document",
        "executable",
        "font",
        "image",
        "inode",
        "text",
        "unknown",
        "video",
    }
)

# --- engine ---------------------------------------------------------------------------------
STAGE_DURATION = Histogram(
    "thunderline_stage_batch_duration_seconds",
    "Time of one handle_batch call.",
    ["stage"],
    buckets=BATCH_BUCKETS,
    registry=REGISTRY,
)
STAGE_MESSAGES = Counter(
    "thunderline_stage_messages_total",
    "Messages finished by a stage, by outcome (ok, dlq).",
    ["stage", "outcome"],
    registry=REGISTRY,
)
STAGE_ERRORS = Counter(
    "thunderline_stage_errors_total",
    "Failed attempts in a stage, by reason (includes attempts later retried).",
    ["stage", "reason"],
    registry=REGISTRY,
)
STAGE_RETRIES = Counter(
    "thunderline_stage_retries_total",
    "Retries scheduled by the engine.",
    ["stage"],
    registry=REGISTRY,
)
STAGE_IN_FLIGHT = Gauge(
    "thunderline_stage_in_flight",
    "Messages taken but not yet acknowledged (summed over live processes).",
    ["stage"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "thunderline_bus_queue_depth",
    "Messages waiting on a bus topic (summed over live processes).",
    ["topic"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
BUS_QUEUE_MESSAGES = Gauge(
    "thunderline_bus_queue_messages",
    "Messages waiting in a broker queue as the broker last reported them (the same figure in "
    "every process that samples it: the most recent sample, not a sum).",
    ["topic"],
    multiprocess_mode="livemostrecent",
    registry=REGISTRY,
)
BUS_QUEUE_CONSUMERS = Gauge(
    "thunderline_bus_queue_consumers",
    "Consumers of a broker queue as the broker last reported them (0: no worker serves it).",
    ["topic"],
    multiprocess_mode="livemostrecent",
    registry=REGISTRY,
)
BUS_UNSERVED_PUBLISHES = Counter(
    "thunderline_bus_unserved_publishes_total",
    "Messages published to a queue that had no consumer (no worker serves that stage).",
    ["topic"],
    registry=REGISTRY,
)
API_CONNECTIONS_REFUSED = Counter(
    "thunderline_api_connections_refused_total",
    "HTTP connections the API closed before a request: slow headers or too many from one address.",
    ["reason"],
    registry=REGISTRY,
)
DLQ_TOTAL = Counter(
    "thunderline_dlq_total",
    "Dead-lettered messages by stage and reason.",
    ["stage", "reason"],
    registry=REGISTRY,
)
#: Why admission or Magika refuses an artifact (stage ``classify``): the reasons of
#: :class:`~thunderline.errors.ArtifactError`'s kinds defined beside it (admission's) and of
#: :class:`~thunderline.errors.ClassifyError`.
CLASSIFY_DLQ_REASONS: Final = tuple(
    sorted(
        {
            kind.reason
            for kind in _errors.ArtifactError.__subclasses__()
            if kind.__module__ == _errors.__name__  # not on import order: others come later
        }
        | {_errors.ArtifactError.reason, _errors.ClassifyError.reason}
    )
)
# Their series exist at 0 from the start. A series born at 1 has no earlier sample, so rate()
# and increase() never see its first dead letter: three kinds of refusal, each first seen once,
# were three dead letters the DLQ-rate alert could not count (the live alerting test saw 3 of
# its 7 and the rate hovered near the 2 % threshold).
for _reason in CLASSIFY_DLQ_REASONS:
    DLQ_TOTAL.labels("classify", _reason)

EVENTS_PUBLISHED = Counter(
    "thunderline_events_published_total", "Events published, by type.", ["type"], registry=REGISTRY
)
INGEST_COMPLETED = Counter(
    "thunderline_ingest_completed_total",
    "Artifacts that reached their end (a voxel or the terminal sink: ok; a voxel stored without "
    "the result of a stage that failed: degraded; the DLQ: dlq), by Magika group (unknown when "
    "the failure came before classification).",
    ["group", "outcome"],
    registry=REGISTRY,
)

# --- classify (Magika) ------------------------------------------------------------------------
MAGIKA_CLASSIFY_DURATION = Histogram(
    "thunderline_magika_classify_duration_seconds",
    "Per-file Magika classification latency (batch time / batch size).",
    buckets=MAGIKA_BUCKETS,
    registry=REGISTRY,
)
MAGIKA_CLASSIFY_ERRORS = Counter(
    "thunderline_magika_classify_errors_total",
    "Files Magika could not classify, by reason.",
    ["reason"],
    registry=REGISTRY,
)
MAGIKA_CLASSIFIED = Counter(
    "thunderline_magika_classified_total",
    "Files classified, by Magika group.",
    ["group"],
    registry=REGISTRY,
)

# --- ONNX -------------------------------------------------------------------------------------
ONNX_INFER_DURATION = Histogram(
    "thunderline_onnx_infer_duration_seconds",
    "ONNX Runtime run time per call.",
    ["model"],
    buckets=ONNX_BUCKETS,
    registry=REGISTRY,
)
ONNX_INFER_ERRORS = Counter(
    "thunderline_onnx_infer_errors_total",
    "Failed inferences, by model and reason.",
    ["model", "reason"],
    registry=REGISTRY,
)
ONNX_BATCH_SIZE = Histogram(
    "thunderline_onnx_batch_size",
    "Requests per dynamic batch.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
    registry=REGISTRY,
)
ONNX_MODEL_HEALTHY = Gauge(
    "thunderline_onnx_model_healthy",
    "1 when the model's session is healthy (the worst over live processes).",
    ["model"],
    multiprocess_mode="livemin",
    registry=REGISTRY,
)
ONNX_SESSION_RESTARTS = Counter(
    "thunderline_onnx_session_restarts_total",
    "Session restarts by the supervisor.",
    ["model"],
    registry=REGISTRY,
)
UNTRUSTED_MODEL_LOADED = Counter(
    "thunderline_ml_untrusted_model_loaded_total",
    "Models loaded from outside the trusted dir or without a listed checksum.",
    registry=REGISTRY,
)
MODEL_CHECKSUM_MISMATCH = Counter(
    "thunderline_ml_model_checksum_mismatch_total",
    "Model loads blocked by a checksum mismatch.",
    registry=REGISTRY,
)

# --- NLP --------------------------------------------------------------------------------------
SPACY_PROCESS_DURATION = Histogram(
    "thunderline_spacy_process_duration_seconds",
    "Per-document spaCy latency seen by the pool.",
    buckets=SPACY_BUCKETS,
    registry=REGISTRY,
)
SPACY_PROCESS_ERRORS = Counter(
    "thunderline_spacy_process_errors_total",
    "Failed documents by reason.",
    ["reason"],
    registry=REGISTRY,
)
SPACY_WORKER_RESTARTS = Counter(
    "thunderline_spacy_worker_restarts_total",
    "spaCy worker restarts, by cause.",
    ["cause"],
    registry=REGISTRY,
)
SPACY_CIRCUIT_STATE = Gauge(
    "thunderline_spacy_circuit_state",
    "Circuit breaker: 0 closed, 1 half-open, 2 open (the worst over live processes).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
SPACY_WORKERS_ALIVE = Gauge(
    "thunderline_spacy_workers_alive",
    "spaCy worker processes alive (summed over live pools).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

#: Restart causes of the pool (declared at zero so that a healthy run still has the series).
SPACY_RESTART_CAUSES: Final = ("crash", "timeout", "parse", "recycle")
for _cause in SPACY_RESTART_CAUSES:
    SPACY_WORKER_RESTARTS.labels(_cause)

#: Text extraction per file in a worker process: milliseconds for text, seconds for a large PDF
#: or an OCR'd page, up to the extract stage's timeout under load.
EXTRACT_BUCKETS: Final = _with_tail((0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
# --- extraction (issue 18) -------------------------------------------------------------------
EXTRACT_DURATION = Histogram(
    "thunderline_extract_duration_seconds",
    "Time of one file in an extraction worker, by extractor.",
    ["extractor"],
    buckets=EXTRACT_BUCKETS,
    registry=REGISTRY,
)
EXTRACT_ERRORS = Counter(
    "thunderline_extract_errors_total",
    "Files whose extraction failed, by extractor and reason.",
    ["extractor", "reason"],
    registry=REGISTRY,
)
EXTRACT_WORKER_STARTS = Counter(
    "thunderline_extract_worker_starts_total",
    "Extraction worker processes started.",
    registry=REGISTRY,
)
EXTRACT_WORKER_RESTARTS = Counter(
    "thunderline_extract_worker_restarts_total",
    "Extraction workers replaced, by cause (timeout, crash, out_of_memory, max_files...).",
    ["cause"],
    registry=REGISTRY,
)

# --- voxels -----------------------------------------------------------------------------------
VOXEL_BUILD_DURATION = Histogram(
    "thunderline_voxel_build_duration_seconds",
    "Build and persist time of one voxel.",
    buckets=VOXEL_BUCKETS,
    registry=REGISTRY,
)
VOXEL_BUILD_ERRORS = Counter(
    "thunderline_voxel_build_errors_total",
    "Failed voxel builds by reason.",
    ["reason"],
    registry=REGISTRY,
)
VOXELS_DELETED = Counter(
    "thunderline_voxels_deleted_total",
    "Voxels deleted (each with an audit record).",
    registry=REGISTRY,
)
PAYLOADS_COLLECTED = Counter(
    "thunderline_payloads_collected_total",
    "Payloads removed once no voxel referenced them.",
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "thunderline_duplicates_total",
    "Artifacts whose bytes were already stored from another source, by TL_DUPLICATE_POLICY.",
    ["policy"],
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "thunderline_webhook_attempts_total",
    "Webhook delivery attempts by outcome (delivered, retry, failed).",
    ["outcome"],
    registry=REGISTRY,
)
SOURCE_ENTRIES = Counter(
    "thunderline_source_entries_total",
    "Source entries handled by sync/watch, by what happened (new, changed, unchanged, "
    "touched, deleted, voxel, linked, dlq).",
    ["what"],
    registry=REGISTRY,
)
VOXEL_CHECKSUM_MISMATCH = Counter(
    "thunderline_voxel_checksum_mismatch_total",
    "Payload reads whose SHA-256 did not match.",
    registry=REGISTRY,
)


def file_group(value: object) -> str:
    """A Magika group as a bounded label value (``other`` for anything unexpected)."""
    return value if isinstance(value, str) and value in FILE_GROUPS else "other"


def terminal_outcome(event: Any) -> str | None:
    """How ``event`` ends its artifact for ``thunderline_ingest_completed_total``.

    ``ok`` (a voxel with every stage's result, or the terminal sink), ``degraded`` (a voxel stored
    without the result of a stage that failed: completed with failures), ``dlq`` (no voxel);
    None for the DLQ record of a degraded artifact (its voxel is the artifact's end, counted
    once; the record itself is counted in ``thunderline_dlq_total`` where it failed).
    """
    data = getattr(event, "data", None) or {}
    if getattr(event, "is_dlq", False):
        return None if data.get("voxel_id") else "dlq"
    return "degraded" if data.get("failures") else "ok"


def record_terminal(event: Any) -> None:
    """Count one artifact that reached its end (called by the engine's collector)."""
    outcome = terminal_outcome(event)
    if outcome is None:
        return
    try:
        from thunderline.dlq.record import Subject  # here: dlq imports this module

        group = file_group(Subject.of(event).classification.get("group") or "unknown")
        INGEST_COMPLETED.labels(group, outcome).inc()
    except Exception:  # never let bookkeeping break the collector
        INGEST_COMPLETED.labels("other", outcome).inc()


# --- scale-out bus (RabbitMQ) ---------------------------------------------------------------
BUS_PUBLISH_REFUSED = Counter(
    "thunderline_bus_publish_refused_total",
    "Publishes the broker refused because the queue was full (reject-publish back-pressure).",
    ["topic"],
    registry=REGISTRY,
)
BUS_CONNECTION_LOST = Counter(
    "thunderline_bus_connection_lost_total",
    "Broker connections lost (the client reconnects with backoff).",
    registry=REGISTRY,
)
BUS_RECONNECTS = Counter(
    "thunderline_bus_reconnects_total",
    "Broker connections restored after a loss.",
    registry=REGISTRY,
)
BUS_UNANSWERED = Counter(
    "thunderline_bus_unanswered_total",
    "Broker round trips (connect, declare, publish confirm, consume) that got no answer within "
    "the bus's operation timeout.",
    registry=REGISTRY,
)
BUS_STALE_ACKS = Counter(
    "thunderline_bus_stale_acks_total",
    "Acks skipped because their channel was lost, or lost while being sent "
    "(the broker redelivers those messages).",
    registry=REGISTRY,
)
BUS_QUARANTINED = Counter(
    "thunderline_bus_quarantined_total",
    "Redelivered messages moved to their stage's quarantine queue (handed out one at a time).",
    ["topic"],
    registry=REGISTRY,
)


# --- HTTP service (``thunderline serve``) ----------------------------------------------------
#: Request latency: ~1 ms health checks up to slow uploads and payload downloads.
HTTP_BUCKETS: Final = _with_tail(
    (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
)
#: Methods counted by name; anything else is ``other`` (bounded label).
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_REQUESTS = Counter(
    "thunderline_http_requests_total",
    "HTTP requests answered, by method, route template (never the raw path) and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "thunderline_http_request_duration_seconds",
    "Time from the request to the last byte of the response, by method and route template.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
    registry=REGISTRY,
)
HTTP_IN_PROGRESS = Gauge(
    "thunderline_http_requests_in_progress",
    "Requests being answered (summed over live processes; SSE streams count while open).",
    ["method"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)


def declare_stage(stage: str) -> None:
    """Create a stage's series at zero so that "nothing completed" is a 0, not an absence."""
    for outcome in ("ok", "dlq"):
        STAGE_MESSAGES.labels(stage, outcome)
    STAGE_RETRIES.labels(stage)
    STAGE_IN_FLIGHT.labels(stage).set(0)
    QUEUE_DEPTH.labels(stage)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """Current value of one sample in this process (0.0 when never touched). Handy in tests."""
    value = REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if value is None else value
