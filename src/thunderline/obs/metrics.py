"""Every Prometheus metric Thunderline exports, declared once (ARCHITECTURE §7).

Labels are few and bounded: stage names, Magika groups, model names, error reasons. Never ids
or file names. All metrics live in :data:`REGISTRY` so tests and the CLI can read them without
touching the global default registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
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

# --- engine ---------------------------------------------------------------------------------
STAGE_DURATION = Histogram(
    "thunderline_stage_batch_duration_seconds",
    "Time of one handle_batch call.",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
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
    "Messages taken but not yet acknowledged.",
    ["stage"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "thunderline_bus_queue_depth", "Messages waiting on a bus topic.", ["topic"], registry=REGISTRY
)
DLQ_TOTAL = Counter(
    "thunderline_dlq_total",
    "Dead-lettered messages by stage and reason.",
    ["stage", "reason"],
    registry=REGISTRY,
)
EVENTS_PUBLISHED = Counter(
    "thunderline_events_published_total", "Events published, by type.", ["type"], registry=REGISTRY
)

# --- classify (Magika) ------------------------------------------------------------------------
MAGIKA_CLASSIFY_DURATION = Histogram(
    "thunderline_magika_classify_duration_seconds",
    "Per-file Magika classification latency (batch time / batch size).",
    buckets=_LATENCY_BUCKETS,
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
    buckets=_LATENCY_BUCKETS,
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
    "1 when the model's session is healthy.",
    ["model"],
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
    buckets=_LATENCY_BUCKETS,
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
    "Circuit breaker: 0 closed, 1 half-open, 2 open.",
    registry=REGISTRY,
)

# --- voxels -----------------------------------------------------------------------------------
VOXEL_BUILD_DURATION = Histogram(
    "thunderline_voxel_build_duration_seconds",
    "Build and persist time of one voxel.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
VOXEL_BUILD_ERRORS = Counter(
    "thunderline_voxel_build_errors_total",
    "Failed voxel builds by reason.",
    ["reason"],
    registry=REGISTRY,
)
VOXEL_CHECKSUM_MISMATCH = Counter(
    "thunderline_voxel_checksum_mismatch_total",
    "Payload reads whose SHA-256 did not match.",
    registry=REGISTRY,
)


def exposition() -> bytes:
    """The Prometheus text exposition of every Thunderline metric."""
    return generate_latest(REGISTRY)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """Current value of one sample (0.0 when it was never touched). Handy in tests."""
    value = REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


# --- scale-out bus (RabbitMQ) ---------------------------------------------------------------
BUS_PUBLISH_REFUSED = Counter(
    "thunderline_bus_publish_refused_total",
    "Publishes the broker refused because the queue was full (reject-publish back-pressure).",
    ["topic"],
    registry=REGISTRY,
)
BUS_RECONNECTS = Counter(
    "thunderline_bus_connection_events_total",
    "Broker connection lost / restored events.",
    ["event"],
    registry=REGISTRY,
)
BUS_STALE_ACKS = Counter(
    "thunderline_bus_stale_acks_total",
    "Acks skipped because their channel was lost (the broker redelivers those messages).",
    registry=REGISTRY,
)
BUS_QUARANTINED = Counter(
    "thunderline_bus_quarantined_total",
    "Redelivered messages moved to their stage's quarantine queue (handed out one at a time).",
    ["topic"],
    registry=REGISTRY,
)
