"""The one DLQ record builder, and the one answer to "which artifact is this about".

Every dead letter -- a stage failure, a refused submission, a dropped message, a message the
broker dead-lettered, a walk failure -- is built by :func:`dead_letter`: a ``system.dlq.*``
event whose data is a :class:`~thunderline.eventdata.DlqRecord` (stage, reason, error,
traceback, attempts, the original event or the raw message), derived from the original event so
it keeps its correlation id. :class:`Subject` reads a record (or any terminal event) back: the
original event and the artifact it is about, parsed once for the outcome store, the CLI, the
API and the metrics.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from thunderline.errors import (
    MalformedEventError,
    StageError,
    ThunderlineError,
    is_retryable,
    reason_of,
)
from thunderline.eventdata import DlqRecord, ErrorInfo, typed_event
from thunderline.events import CloudEvent


class BrokerDeadLetterError(StageError):
    """The broker dead-lettered a message (``x-death``); ``reason`` is the broker's."""

    def __init__(self, message: str, *, reason: str, details: dict[str, Any]) -> None:
        super().__init__(message, details=details)
        self.reason = reason


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value.isoformat() if isinstance(value, datetime) else str(value)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON values (bytes decoded, datetimes in ISO form, the rest str)."""
    return json.loads(json.dumps(value, default=_plain))


def dead_letter(
    stage: str,
    dlq_type: str,
    exc: BaseException,
    *,
    original: CloudEvent | None,
    raw: bytes | None = None,
    attempts: int = 1,
    source: str | None = None,
    record_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> CloudEvent:
    """The DLQ record of a failure.

    It holds the original event (or the ``raw`` message when there was no event), the reason
    and error of ``exc``, its traceback and the attempts made.

    ``record_id`` fixes the record's id (a broker's dead letter read twice is one record; a
    record without an original then starts its own correlation chain under that id);
    ``extra`` adds backend bookkeeping (``broker``) to the data.
    """
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    details = exc.details if isinstance(exc, ThunderlineError) else {}
    record = DlqRecord(
        stage=stage,
        reason=reason_of(exc),
        error=ErrorInfo(type=type(exc).__name__, message=str(exc), details=json_safe(details)),
        traceback=tb,
        attempts=attempts,
        original=original.to_dict() if original is not None else None,
        original_raw=(raw or b"").decode("utf-8", "replace") if original is None else None,
        retryable=is_retryable(exc),
        **dict(extra or {}),
    )
    event = typed_event(
        dlq_type, record, parent=original, source=source or f"urn:thunderline:stage:{stage}"
    )
    if record_id is not None:
        update = {"id": record_id}
        if original is None:
            update["correlationid"] = record_id
        event = event.model_copy(update=update)
    return event


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Subject:
    """What a terminal event or DLQ record is about.

    The artifact (as the event carries it) and, for a DLQ record, the original event.
    """

    original: CloudEvent | None
    artifact: Mapping[str, Any] = field(default_factory=dict)
    classification: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, event: CloudEvent) -> Subject:
        """Parse ``event`` once into its subject.

        A DLQ record gives its original (when it is an event) and the artifact of the
        original's data; any other event gives its own artifact.
        """
        data = _mapping(event.data)
        if not event.is_dlq:
            return cls(None, _mapping(data.get("artifact")), _mapping(data.get("classification")))
        raw = _mapping(data.get("original"))
        inner = _mapping(raw.get("data"))
        try:
            original: CloudEvent | None = CloudEvent.from_dict(dict(raw)) if raw else None
        except (MalformedEventError, ValueError, TypeError):
            original = None
        found = _mapping(inner.get("classification")) or _mapping(
            _mapping(_mapping(data.get("error")).get("details")).get("classification")
        )
        return cls(original, _mapping(inner.get("artifact")), found)

    @property
    def key(self) -> str | None:
        """The artifact's identity across runs.

        Its source (file URI, ``archive!/member``), else its path, name or stored payload (as
        in memory: may hold surrogate escapes).
        """
        for name in ("source", "path", "name", "payload_ref"):
            value = self.artifact.get(name)
            if value:
                return str(value)
        return None

    @property
    def name(self) -> str | None:
        """The artifact's display name (its name, else its path, else its key)."""
        value = self.artifact.get("name") or self.artifact.get("path") or self.key
        return str(value) if value else None
