"""The AMQP client libraries' own log records, made fit for an operator's log.

During a broker cut, aiormq logs "Cancelling cause reader exited abnormally" with two chained
tracebacks, aio-pika logs one warning per failed reconnect attempt and an ERROR per channel
callback that finds its connection closed (whose ``%r`` argument cannot even be formatted, so
``logging`` prints a "--- Logging error ---" traceback of its own). :class:`RabbitMQBus`
already logs one clear line when the connection is lost and one when it is restored
(``thunderline.bus.rabbitmq``), so :func:`quiet_client_logs` installs :class:`ClientLogFilter`
on every ``aiormq.*`` and ``aio_pika.*`` logger:

- connection chatter (INFO/WARNING, and errors caused by a closed connection) is demoted to
  DEBUG, as one line without a traceback;
- any other ERROR stays an ERROR, as one line naming the exception (no traceback);
- every message is rendered safely first (an argument whose ``repr`` fails is shown by type).
"""

from __future__ import annotations

import asyncio
import logging

CLIENT_LOGGERS = ("aiormq", "aio_pika")
_CLOSED_WORDS = (
    "closed",
    "connection reset",
    "unexpectedly",
    "reconnect",
    "broken pipe",
    "no active transport",  # a robust channel's close callback after its connection went away
    "channelinvalidstateerror",
)


def _safe_arg(value: object) -> object:
    if isinstance(value, str | int | float | bytes | type(None)):
        return value
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _render(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        try:
            return str(record.msg) % tuple(_safe_arg(a) for a in args)
        except Exception:
            return str(record.msg)


def _connection_noise(record: logging.LogRecord, message: str) -> bool:
    """Whether the record only says that the connection went away (or is coming back)."""
    if record.levelno < logging.ERROR:
        return True
    error = record.exc_info[1] if record.exc_info else None
    if error is None and isinstance(record.args, tuple):
        error = next((a for a in record.args if isinstance(a, BaseException)), None)
    if isinstance(error, ConnectionError | asyncio.IncompleteReadError | asyncio.CancelledError):
        return True
    if type(error).__name__ in {
        "AMQPConnectionError",
        "ConnectionClosed",
        "ChannelInvalidStateError",
    }:
        return True
    text = f"{message} {error or ''}".lower()
    return any(word in text for word in _CLOSED_WORDS)


class ClientLogFilter(logging.Filter):
    """Rewrites aiormq/aio-pika records: one line, no traceback, connection chatter at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep a client library record only when it says something new (one line per loss and reconnect)."""
        if record.levelno <= logging.DEBUG:
            return True
        message = _render(record)
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            message = f"{message} ({type(error).__name__}: {error})"
        record.msg, record.args = message, None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        if _connection_noise(record, message):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            # kept only where DEBUG is wanted: handlers do not look at the logger's level
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_FILTER = ClientLogFilter()


def quiet_client_logs() -> None:
    """Install :class:`ClientLogFilter` on every aiormq/aio-pika logger created so far.

    Their modules create them at import. Idempotent.
    """
    manager = logging.Logger.manager
    for name in list(manager.loggerDict):
        if name.split(".", 1)[0] not in CLIENT_LOGGERS:
            continue
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
