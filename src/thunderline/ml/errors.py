"""Errors of the ONNX inference package, subclasses of the project's error tree.

Each has a short ``reason`` (DLQ records, metric labels) and a ``retryable`` flag read by the
pipeline engine::

    StageError
    └── MlError
        ├── ModelInputError          inputs do not match the model's I/O spec (permanent)
        ├── InferenceError           the session failed while running (retryable; restarts it)
        ├── ModelUnavailableError    the model is marked unhealthy: fail fast (permanent)
        └── ModelLoadError           the model cannot be loaded
            ├── ModelNotFoundError   not in the registry, or its file is missing
            └── UntrustedModelError  outside the model dir, no listed checksum, or external
                ├── ExternalDataEscapeError   data pointing outside the model folder
                ├── ChecksumsMissingError     the model folder has no (valid) checksums.txt
                ├── ModelSignatureError       unsigned, or the signature does not verify
                └── ModelPermissionError      a model folder/file writable by group or others
    ArtifactError
    ├── PreprocessError              the payload cannot be turned into a tensor (permanent)
    └── UnsupportedContentError      no registered model takes this content (permanent)

A checksum mismatch is :class:`thunderline.errors.ChecksumMismatch`.
"""

from __future__ import annotations

from thunderline.errors import ArtifactError, StageError


class MlError(StageError):
    """Base class of the inference errors."""

    reason = "ml"


class ModelInputError(MlError):
    """Inputs do not match the model's I/O spec; the message names expected and got."""

    reason = "model_input"


class InferenceError(MlError):
    """ONNX Runtime failed while running a valid input (the supervisor restarts the session)."""

    reason = "inference"
    retryable = True


class ModelUnavailableError(MlError):
    """The model's worker is unhealthy (repeated failures): requests fail fast."""

    reason = "model_unhealthy"


class ModelLoadError(MlError):
    """The model file could not be read or ONNX Runtime refused it."""

    reason = "model_load"


class ModelNotFoundError(ModelLoadError):
    """No such model in the registry, or its file does not exist."""

    reason = "model_not_found"


class UntrustedModelError(ModelLoadError):
    """Refused by the untrusted-model gate (TL_ALLOW_UNTRUSTED_MODELS=false)."""

    reason = "untrusted_model"


class ExternalDataEscapeError(UntrustedModelError):
    """An initializer's external-data location points outside the model's folder."""

    reason = "external_data_escape"


class ChecksumsMissingError(UntrustedModelError):
    """The model folder has no ``checksums.txt`` (or it is malformed)."""

    reason = "checksums_missing"


class ModelSignatureError(UntrustedModelError):
    """The model folder is unsigned, or its ``model.sig`` does not verify with the public key."""

    reason = "model_signature"


class ModelPermissionError(UntrustedModelError):
    """A model folder or file (or the public key) is writable by group or others."""

    reason = "model_permissions"


class PreprocessError(ArtifactError):
    """The payload cannot be decoded or converted into the model's input."""

    reason = "preprocess"


class UnsupportedContentError(ArtifactError):
    """No registered model takes this kind of content."""

    reason = "unsupported_content"
