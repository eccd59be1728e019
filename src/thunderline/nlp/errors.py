"""Typed errors of the NLP sidecar, placed in the project's error tree.

Each carries the short ``reason`` used in DLQ records and metric labels. None of them is
``retryable`` for the pipeline engine: the pool has already retried what retrying can fix
(worker crashes and timeouts), so the engine dead-letters them straight away.

::

    StageError
    └── NlpError                 reason "nlp"       the pipeline raised on a document
        ├── NlpTimeoutError      reason "timeout"   no answer within the per-document timeout
        ├── NlpCrashError        reason "crash"     the worker died while holding the document
        ├── NlpParseError        reason "parse"     the worker's answer is not a valid line
        ├── NlpCircuitOpenError  reason "circuit_open"
        └── NlpPoolClosedError   reason "shutdown"
    ArtifactError
    └── NoTextError              reason "no_text"    the event carries no extracted text
    ConfigError
    └── NlpModelMissingError     reason "model_missing" TL_SPACY_MODEL cannot be imported
"""

from __future__ import annotations

from thunderline.errors import ArtifactError, ConfigError, StageError


class NlpError(StageError):
    """The NLP pipeline failed on a document."""

    reason = "nlp"


class NlpTimeoutError(NlpError):
    """A document was not answered within the per-document timeout (after retries)."""

    reason = "timeout"


class NlpCrashError(NlpError):
    """The worker process died while it held the document (after retries)."""

    reason = "crash"


class NlpParseError(NlpError):
    """The worker answered with a line that is not a valid protocol message."""

    reason = "parse"


class NlpCircuitOpenError(NlpError):
    """The circuit breaker is open: too many worker failures in the window."""

    reason = "circuit_open"


class NlpPoolClosedError(NlpError):
    """The pool was closed before the document was processed."""

    reason = "shutdown"


class NoTextError(ArtifactError):
    """The event reached the NLP stage without extracted text (no ``extract`` on its route)."""

    reason = "no_text"


class NlpModelMissingError(ConfigError):
    """The spaCy pipeline named by ``TL_SPACY_MODEL`` is not installed."""

    reason = "model_missing"


#: Error kinds a worker may report in ``{"error": {"kind": ...}}`` -> parent error type.
WORKER_ERROR_KINDS: dict[str, type[NlpError]] = {
    "timeout": NlpTimeoutError,
    "parse": NlpParseError,
    "nlp": NlpError,
}
