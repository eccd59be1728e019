"""Start / stop / error telemetry hooks, after Elixir's ``:telemetry``.

Code under measurement calls :func:`emit` with an event name such as
``("thunderline", "stage", "classify", "stop")``, measurements (``duration`` in seconds, counts)
and metadata (stage, correlation id, reason). Handlers attached with :func:`attach` receive every
event; a failing handler is detached-proof: its exception is logged, never raised into the
pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

EventName = tuple[str, ...]
Handler = Callable[[EventName, Mapping[str, float], Mapping[str, Any]], None]

_log = logging.getLogger("thunderline.telemetry")
_handlers: dict[str, Handler] = {}


def attach(handler_id: str, handler: Handler) -> None:
    """Register ``handler`` under ``handler_id`` (replacing any handler with that id)."""
    _handlers[handler_id] = handler


def detach(handler_id: str) -> None:
    """Remove a handler attached under ``handler_id`` (a no-op when none is)."""
    _handlers.pop(handler_id, None)


def emit(name: EventName, measurements: Mapping[str, float], metadata: Mapping[str, Any]) -> None:
    """Send one telemetry event to every attached handler."""
    for handler_id, handler in list(_handlers.items()):
        try:
            handler(name, measurements, metadata)
        except Exception:  # a broken handler must never break the pipeline
            _log.exception("telemetry handler %s failed on %s", handler_id, name)
