"""The error registry: an error type by its name, for DLQ records written before the record
carried the ``retryable`` flag (issue 24)."""

from __future__ import annotations

import pytest

from thunderline.errors import (
    ArtifactTooLargeError,
    BackendError,
    StageTimeoutError,
    ThunderlineError,
    error_registry,
    is_retryable,
    retryable_by_name,
)


def test_every_registered_type_is_found_by_its_name_with_its_own_flag() -> None:
    registry = error_registry()
    # the types of other packages are imported on a miss (NLP, extraction, models, voxels)
    for name in ("NlpTimeoutError", "ExtractionError", "InferenceError", "ArchiveCorruptError"):
        assert name in registry, name
    for name, classes in registry.items():
        flags = {cls.retryable for cls in classes}
        assert all(issubclass(cls, ThunderlineError) for cls in classes)
        assert retryable_by_name(name) == (flags.pop() if len(flags) == 1 else None), name


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ArtifactTooLargeError("big"), False),
        (BackendError("away"), True),
        (StageTimeoutError("slow"), True),
        (TimeoutError("t"), True),
        (ConnectionResetError("reset"), True),
        (ValueError("v"), False),
    ],
)
def test_a_name_gives_what_the_type_itself_says(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc) is expected
    assert retryable_by_name(type(exc).__name__) is expected


def test_what_the_registry_cannot_say_is_unknown_never_guessed() -> None:
    assert retryable_by_name("PdfReadError") is None  # a library's type: not ours to judge
    assert retryable_by_name("") is None and retryable_by_name(None) is None
    # reason alone: only when every type with that reason agrees
    assert retryable_by_name(None, "too_large") is False
    assert retryable_by_name(None, "backend") is True
    assert retryable_by_name(None, "timeout") is None  # StageTimeoutError vs ExtractTimeoutError
    assert retryable_by_name(None, "no_such_reason") is None
