"""Logging set-up: text or JSON lines on stderr, each record with the current correlation id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "thunderline_correlation_id", default=None
)


class _CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlationid = correlation_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlationid, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlationid": getattr(record, "correlationid", "-"),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "WARNING", fmt: str = "text") -> None:
    """Install one stderr handler on the ``thunderline`` logger (idempotent)."""
    logger = logging.getLogger("thunderline")
    logger.setLevel(level.upper())
    for handler in list(logger.handlers):
        if getattr(handler, "_thunderline", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._thunderline = True  # type: ignore[attr-defined]
    handler.addFilter(_CorrelationFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(correlationid)s] %(message)s")
        )
    logger.addHandler(handler)
    logger.propagate = True
