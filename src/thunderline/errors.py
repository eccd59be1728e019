"""The Thunderline error tree.

Every failure the system can report is one of these types. Backend errors are translated at the
boundary (``raise ... from exc``) so callers only ever see this tree::

    ThunderlineError
    ├── ConfigError                    bad or inconsistent settings
    ├── EventError
    │   ├── MalformedEventError        bytes/dict that is not a valid CloudEvent, or data
    │   │                              that does not fit its type's model
    │   └── EventContractError         a stage produced data that is not its type's model (bug)
    ├── StageError                     a unit of work failed (``retryable`` says whether to retry)
    │   ├── StageTimeoutError          the handler ran past its timeout (retryable)
    │   ├── OverloadError              a bounded queue dropped the message
    │   ├── ArtifactError              the input artifact itself is unusable (permanent)
    │   │   ├── ArtifactNotFoundError
    │   │   │   └── PayloadNotFound    the object store holds no payload at that address
    │   │   ├── UnreadableArtifactError
    │   │   ├── NotARegularFileError
    │   │   ├── PathEscapeError        a symlink or ``..`` leaves the allowed root
    │   │   ├── HardLinkError          a file with more than one link (TL_ALLOW_HARDLINKS)
    │   │   └── ArtifactTooLargeError
    │   ├── ClassifyError              Magika itself failed
    │   └── ModelPinError              a reprocess run pins a model this stage cannot run
    ├── BackendError                   bus, database or object store failure (retryable)
    ├── UnservedStageError             a submission waited too long for a stage no worker serves
    └── ChecksumMismatch               stored bytes or a model file do not match their SHA-256

Each error carries a short machine ``reason`` (used as a metric label and in DLQ records) and a
``retryable`` flag read by the pipeline engine.
"""

from __future__ import annotations

from typing import Any


class ThunderlineError(Exception):
    """Base class of every Thunderline error."""

    reason: str = "error"
    retryable: bool = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


class ConfigError(ThunderlineError):
    """Settings are missing, malformed or contradict each other."""

    reason = "config"


class EventError(ThunderlineError):
    """An event could not be built or read."""

    reason = "event"


class MalformedEventError(EventError):
    """Bytes or a mapping that do not form a valid CloudEvent."""

    reason = "malformed_event"


class EventContractError(EventError):
    """A stage published data that does not match its event type's model: a bug in the stage."""

    reason = "contract_violation"


class StageError(ThunderlineError):
    """A stage failed to process a message."""

    reason = "stage_error"


class StageTimeoutError(StageError):
    """A stage handler did not finish within its timeout."""

    reason = "timeout"
    retryable = True


class OverloadError(StageError):
    """A bounded queue was full and its overflow policy dropped the message."""

    reason = "overload"


class ModelPinError(StageError):
    """A reprocess run pins a model (``NAME@VERSION``) this stage does not have (permanent)."""

    reason = "model_pin"


class ArtifactError(StageError):
    """The artifact cannot be processed (permanent: retrying will not help)."""

    reason = "artifact"


class ArtifactNotFoundError(ArtifactError):
    """The artifact's path does not exist (or vanished before it was opened)."""

    reason = "not_found"


class PayloadNotFound(ArtifactNotFoundError, KeyError):
    """The object store holds no payload under that SHA-256 (raised by every store).

    Also a ``KeyError``, so code written against the old bare ``KeyError`` keeps working.
    """

    reason = "not_found"

    __str__ = Exception.__str__  # not KeyError's quoted repr


class UnreadableArtifactError(ArtifactError):
    """The artifact exists but cannot be read (permissions, I/O error)."""

    reason = "unreadable"


class NotARegularFileError(ArtifactError):
    """The path is not a regular file (a directory, FIFO, socket or device)."""

    reason = "not_a_file"


class PathEscapeError(ArtifactError):
    """The path leads outside the ingest root (a symlink, or a name swapped during admission)."""

    reason = "path_escape"


class HardLinkError(ArtifactError):
    """A regular file with more than one link, refused unless ``TL_ALLOW_HARDLINKS``.

    Its other names may lie outside the ingest root (``ln /etc/shadow inbox/x``).
    """

    reason = "hard_link"


class ArtifactTooLargeError(ArtifactError):
    """The artifact is larger than ``TL_MAX_FILE_BYTES``."""

    reason = "too_large"


class ClassifyError(StageError):
    """Magika could not classify the content."""

    reason = "classify"


class BackendError(ThunderlineError):
    """A backend (bus, database, object store) failed; usually transient."""

    reason = "backend"
    retryable = True


class UnservedStageError(ThunderlineError):
    """A submission waited too long for a stage that no worker serves.

    It waited ``TL_BUS_UNSERVED_TIMEOUT_S`` for a stage whose queue has messages and no consumer.
    Nothing is lost: the messages stay queued and are processed when a worker for that stage starts.
    ``details``: stage, queue, messages, waited_s.
    """

    reason = "unserved"


class ChecksumMismatch(ThunderlineError):
    """Bytes do not match the SHA-256 recorded for them. Never serve or load them."""

    reason = "checksum_mismatch"

    def __init__(self, message: str, *, expected: str, actual: str, **kw: Any) -> None:
        super().__init__(message, details={"expected": expected, "actual": actual, **kw})
        self.expected = expected
        self.actual = actual


def reason_of(exc: BaseException) -> str:
    """The short machine reason for any exception (``internal`` for foreign ones)."""
    if isinstance(exc, ThunderlineError):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "internal"


def is_retryable(exc: BaseException) -> bool:
    """Whether the engine should retry after ``exc``."""
    if isinstance(exc, ThunderlineError):
        return exc.retryable
    return isinstance(exc, TimeoutError | ConnectionError)


# ---- the error registry: an error's type by name (for records written before ``retryable``) --
#: Modules that define error types beyond this one (imported on the first registry lookup).
ERROR_MODULES: tuple[str, ...] = (
    "thunderline.convert.errors",
    "thunderline.dlq.record",
    "thunderline.extract.errors",
    "thunderline.ids",
    "thunderline.ml.errors",
    "thunderline.nlp.errors",
    "thunderline.search.engine",
    "thunderline.search.query",
    "thunderline.voxel.errors",
    "thunderline.voxel.paging",
)


def _subclasses(cls: type[ThunderlineError]) -> list[type[ThunderlineError]]:
    found: list[type[ThunderlineError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def error_registry(*, load: bool = True) -> dict[str, list[type[ThunderlineError]]]:
    """Every Thunderline error type by class name; a name two modules use maps to both.

    With ``load``, the defining modules of :data:`ERROR_MODULES` are imported first.
    """
    import importlib

    for module in ERROR_MODULES if load else ():
        importlib.import_module(module)
    registry: dict[str, list[type[ThunderlineError]]] = {ThunderlineError.__name__: []}
    registry[ThunderlineError.__name__].append(ThunderlineError)
    for cls in _subclasses(ThunderlineError):
        if not cls.__name__.startswith("_"):
            registry.setdefault(cls.__name__, [])
            if cls not in registry[cls.__name__]:
                registry[cls.__name__].append(cls)
    return registry


def _one(flags: set[bool]) -> bool | None:
    return flags.pop() if len(flags) == 1 else None


def retryable_by_name(type_name: str | None, reason: str | None = None) -> bool | None:
    """Whether an error recorded only by its type name (and reason) was retryable.

    The answer comes from the error registry -- never guessed from its text. ``None`` when the
    registry cannot say (an unknown type, or a name or reason whose types disagree).

    A Thunderline type gives its class's ``retryable``; a built-in exception the rule of
    :func:`is_retryable` (timeouts and connection errors are); without a known type, a reason
    that every registered type with that reason agrees on.
    """
    import builtins

    registry = error_registry(load=False)  # the types imported so far, then every module's
    if not type_name or type_name not in registry:
        registry = error_registry()
    if type_name:
        classes = registry.get(type_name)
        if classes:
            return _one({cls.retryable for cls in classes})
        builtin = getattr(builtins, type_name, None)
        if isinstance(builtin, type) and issubclass(builtin, BaseException):
            return issubclass(builtin, TimeoutError | ConnectionError)
        return None
    if reason:
        flags = {
            cls.retryable for found in registry.values() for cls in found if cls.reason == reason
        }
        return _one(flags) if flags else None
    return None
