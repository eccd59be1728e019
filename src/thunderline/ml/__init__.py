"""ONNX inference in-process: tensor contract, models, registry, supervision, batching.

Quick start (see docs/ONNX_QUICK_START.md)::

    from thunderline.ml import ModelRegistry, ModelSupervisor
    registry = ModelRegistry.from_settings(settings)      # models/registry.toml, gate on
    model = registry.get_model("image_classifier")         # checksums + signature verified
    result = model.infer(x, correlation_id="...")          # x: float32 [1, 28, 28, 1]
"""

from thunderline.errors import ChecksumMismatch
from thunderline.ml.batcher import BatchPolicy, DynamicBatcher, calibrate_batch_cap
from thunderline.ml.doctor import doctor_report
from thunderline.ml.errors import (
    ChecksumsMissingError,
    ExternalDataEscapeError,
    InferenceError,
    MlError,
    ModelInputError,
    ModelLoadError,
    ModelNotFoundError,
    ModelPermissionError,
    ModelSignatureError,
    ModelUnavailableError,
    PreprocessError,
    UnsupportedContentError,
    UntrustedModelError,
)
from thunderline.ml.model import ModelMetadata, OnnxModel, SessionConfig, resolve_providers
from thunderline.ml.registry import ModelCheck, ModelEntry, ModelRegistry
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
from thunderline.ml.trust import (
    file_sha256,
    model_folder_of,
    permission_problems,
    sign_folder,
    verify_checksums,
    verify_signature,
    write_checksums,
)

__all__ = [
    "BatchPolicy",
    "ChecksumMismatch",
    "ChecksumsMissingError",
    "DynamicBatcher",
    "ExternalDataEscapeError",
    "IOSpec",
    "InferenceError",
    "InferenceResult",
    "MlError",
    "ModelCheck",
    "ModelEntry",
    "ModelHealth",
    "ModelInput",
    "ModelInputError",
    "ModelLoadError",
    "ModelMetadata",
    "ModelNotFoundError",
    "ModelOutput",
    "ModelPermissionError",
    "ModelRegistry",
    "ModelSignatureError",
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
    "calibrate_batch_cap",
    "cast_to_float32",
    "doctor_report",
    "file_sha256",
    "model_folder_of",
    "nchw_to_nhwc",
    "nhwc_to_nchw",
    "permission_problems",
    "resolve_providers",
    "sign_folder",
    "softmax",
    "standardize",
    "top_k",
    "verify_checksums",
    "verify_signature",
    "write_checksums",
]
