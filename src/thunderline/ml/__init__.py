"""ONNX inference in-process: tensor contract, models, registry, supervision, batching.

Quick start (see docs/ONNX_QUICK_START.md)::

    from thunderline.ml import ModelRegistry, ModelSupervisor
    registry = ModelRegistry.from_settings(settings)      # models/registry.toml, gate on
    model = registry.get_model("image_classifier")         # checksum verified
    result = model.infer(x, correlation_id="...")          # x: float32 [1, 3, 224, 224]
"""

from thunderline.errors import ChecksumMismatch
from thunderline.ml.batcher import BatchPolicy, DynamicBatcher, calibrate_batch_cap
from thunderline.ml.doctor import doctor_report
from thunderline.ml.errors import (
    ExternalDataEscapeError,
    InferenceError,
    MlError,
    ModelInputError,
    ModelLoadError,
    ModelNotFoundError,
    ModelUnavailableError,
    PreprocessError,
    UnsupportedContentError,
    UntrustedModelError,
)
from thunderline.ml.model import ModelMetadata, OnnxModel, SessionConfig, resolve_providers
from thunderline.ml.registry import ModelEntry, ModelRegistry, VerifyResult, file_sha256
from thunderline.ml.spec import IOSpec, TensorSpec
from thunderline.ml.supervisor import ModelHealth, ModelState, ModelSupervisor, ModelWorker
from thunderline.ml.tensors import (
    InferenceResult,
    ModelInput,
    ModelOutput,
    cast_to_float32,
    nchw_to_nhwc,
    nhwc_to_nchw,
    softmax,
    standardize,
    top_k,
)

__all__ = [
    "BatchPolicy",
    "ChecksumMismatch",
    "DynamicBatcher",
    "ExternalDataEscapeError",
    "IOSpec",
    "InferenceError",
    "InferenceResult",
    "MlError",
    "ModelEntry",
    "ModelHealth",
    "ModelInput",
    "ModelInputError",
    "ModelLoadError",
    "ModelMetadata",
    "ModelNotFoundError",
    "ModelOutput",
    "ModelRegistry",
    "ModelState",
    "ModelSupervisor",
    "ModelUnavailableError",
    "ModelWorker",
    "OnnxModel",
    "PreprocessError",
    "SessionConfig",
    "TensorSpec",
    "UnsupportedContentError",
    "UntrustedModelError",
    "VerifyResult",
    "calibrate_batch_cap",
    "cast_to_float32",
    "doctor_report",
    "file_sha256",
    "nchw_to_nhwc",
    "nhwc_to_nchw",
    "resolve_providers",
    "softmax",
    "standardize",
    "top_k",
]
