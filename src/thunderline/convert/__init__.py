"""Keras 3 -> ONNX conversion and Keras/ONNX Runtime equivalence reports.

Needs the optional ``convert`` extra (TensorFlow, Keras, tf2onnx); it is imported lazily, so
this package imports without it and fails with :class:`ConvertUnavailableError` (an install
hint) only when a model is converted or validated. Quick start (docs/CONVERT_QUICK_START.md)::

    thunderline models convert my.keras --out models/my_model --key /path/to/private.pem
    thunderline models validate my_model
"""

from thunderline.convert.converter import (
    DEFAULT_OPSET,
    ConversionSummary,
    TensorInfo,
    check_io,
    convert_keras,
)
from thunderline.convert.errors import (
    ConvertError,
    ConvertUnavailableError,
    ExportError,
    IOMismatchError,
    NotAKerasModelError,
    UnsupportedLayerError,
)
from thunderline.convert.keras_file import check_archive, import_keras, load_keras_model
from thunderline.convert.validator import (
    REPORT_FILE,
    TOLERANCE,
    ValidationReport,
    validate_folder,
)

__all__ = [
    "DEFAULT_OPSET",
    "REPORT_FILE",
    "TOLERANCE",
    "ConversionSummary",
    "ConvertError",
    "ConvertUnavailableError",
    "ExportError",
    "IOMismatchError",
    "NotAKerasModelError",
    "TensorInfo",
    "UnsupportedLayerError",
    "ValidationReport",
    "check_archive",
    "check_io",
    "convert_keras",
    "import_keras",
    "load_keras_model",
    "validate_folder",
]
