"""Errors of the Keras -> ONNX converter and validator (subclasses of the project's tree).

The tree::

    ThunderlineError
    └── ConvertError                  conversion or validation cannot proceed
        ├── ConvertUnavailableError   TensorFlow/Keras are not installed (the ``convert`` extra)
        ├── NotAKerasModelError       not a file, not a ``.keras`` archive, truncated, unreadable
        ├── UnsupportedLayerError     a custom or unknown layer class (cannot be exported)
        ├── ExportError               the ONNX exporter failed
        └── IOMismatchError           ONNX input/output names or shapes differ from Keras

Every message names the file. The CLI prints it and exits with code 2.
"""

from __future__ import annotations

from thunderline.errors import ThunderlineError


class ConvertError(ThunderlineError):
    """Base class of the converter's errors."""

    reason = "convert"


class ConvertUnavailableError(ConvertError):
    """TensorFlow / Keras are missing: install the ``convert`` extra."""

    reason = "convert_unavailable"


class NotAKerasModelError(ConvertError):
    """The input is not a readable Keras 3 ``.keras`` model file."""

    reason = "not_a_keras_model"


class UnsupportedLayerError(ConvertError):
    """The model uses a layer class Keras does not ship (custom or unknown)."""

    reason = "unsupported_layer"


class ExportError(ConvertError):
    """Keras' ONNX export (tf2onnx) failed."""

    reason = "export"


class IOMismatchError(ConvertError):
    """The exported ONNX inputs/outputs do not match the Keras model's names or shapes."""

    reason = "io_mismatch"
