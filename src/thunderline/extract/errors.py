"""Typed errors of the extraction layer, placed in the project's error tree.

Each carries the short ``reason`` used in DLQ records and metric labels. None is retryable:
a parser that fails, hangs, crashes or runs out of memory on a file does it again on the same
bytes, so the file is dead-lettered at once (``system.dlq.extract_failed``) and the worker
that held it is replaced.

::

    ArtifactError
    └── ExtractionError          reason "extraction"     the parser refused the payload
    StageError
    └── ExtractWorkerError       reason "extract_worker" the worker broke the protocol
        ├── ExtractTimeoutError  reason "timeout"        no progress / past the total timeout
        ├── ExtractCrashError    reason "crash"          the worker died holding the file
        ├── ExtractMemoryError   reason "out_of_memory"  the file needed more than the cap
        └── ExtractPoolClosedError reason "shutdown"
"""

from __future__ import annotations

from thunderline.errors import ArtifactError, StageError


class ExtractionError(ArtifactError):
    """No text or metadata could be taken from the payload.

    It is damaged, encrypted, or not the format its label says.
    """

    reason = "extraction"


class ExtractWorkerError(StageError):
    """The extraction worker did not answer as the protocol says."""

    reason = "extract_worker"


class ExtractTimeoutError(ExtractWorkerError):
    """The parser stalled or ran too long, and its worker was killed.

    It made no progress within the progress timeout, or ran past the total timeout of its
    kind of file.
    """

    reason = "timeout"


class ExtractCrashError(ExtractWorkerError):
    """The worker process died while it held the file (a signal, an abort in native code)."""

    reason = "crash"


class ExtractMemoryError(ExtractWorkerError):
    """The parser needed more memory than the worker's cap (``TL_EXTRACT_MEMORY_MB``)."""

    reason = "out_of_memory"


class ExtractPoolClosedError(ExtractWorkerError):
    """The pool was closed before the file was extracted."""

    reason = "shutdown"


__all__ = [
    "ExtractCrashError",
    "ExtractMemoryError",
    "ExtractPoolClosedError",
    "ExtractTimeoutError",
    "ExtractWorkerError",
    "ExtractionError",
]
