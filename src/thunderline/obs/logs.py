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
        """One log record as a line of JSON (time, level, logger, message and extras)."""
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


#: Loggers of libraries whose warnings are about one input (pypdf: "EOF marker not found" on
#: a damaged PDF). The artifact's own record already says what happened to it, so these go to
#: our log, one level down (WARNING becomes INFO), never raw onto stderr.
LIBRARY_LOGGERS = ("pypdf",)


class _LibraryFilter(logging.Filter):
    """Demotes a library's WARNING to INFO, then applies the ``thunderline`` level."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return record.levelno >= self.threshold


def _handler(fmt: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler._thunderline = True  # type: ignore[attr-defined]
    handler.addFilter(_CorrelationFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(correlationid)s] %(message)s")
        )
    return handler


def configure_logging(level: str = "WARNING", fmt: str = "text") -> None:
    """Install one stderr handler on ``thunderline`` and on each of :data:`LIBRARY_LOGGERS`.

    Idempotent.
    """
    logger = logging.getLogger("thunderline")
    logger.setLevel(level.upper())
    for name in ("thunderline", *LIBRARY_LOGGERS):
        target = logging.getLogger(name)
        for old in list(target.handlers):
            if getattr(old, "_thunderline", False):
                target.removeHandler(old)
    logger.addHandler(_handler(fmt))
    logger.propagate = True
    threshold = logger.level
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        handler = _handler(fmt)
        handler.addFilter(_LibraryFilter(threshold))  # on the handler: sees child loggers too
        library.setLevel(min(threshold, logging.WARNING))
        library.addHandler(handler)
        library.propagate = False
