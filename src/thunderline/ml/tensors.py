"""The tensor contract: model inputs and outputs over NumPy arrays, and normalisation helpers.

:class:`ModelInput` / :class:`ModelOutput` over NumPy arrays, the result of one inference, and
the normalisation helpers used before a model runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class ModelInput:
    """One named input tensor. ``name`` may be omitted for single-input models."""

    tensor: NDArray[Any]
    name: str | None = None

    @property
    def dtype(self) -> np.dtype[Any]:
        """The tensor's element type."""
        return self.tensor.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """The tensor's shape."""
        return tuple(self.tensor.shape)


@dataclass(frozen=True)
class ModelOutput:
    """One named output tensor with metadata (model, version, timing, correlation id)."""

    name: str
    tensor: NDArray[Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The tensor's element type."""
        return self.tensor.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """The tensor's shape."""
        return tuple(self.tensor.shape)


@dataclass(frozen=True)
class InferenceResult:
    """What :meth:`OnnxModel.infer` returns: outputs in the model's order, plus timing.

    ``inference_ms`` is the ONNX Runtime run time (of the whole batch when the request was
    batched with others; ``batch_size`` says how many requests shared it); ``total_ms`` adds
    input checks and, through the batcher, queueing.
    """

    outputs: dict[str, ModelOutput]
    model: str
    version: str
    inference_ms: float
    total_ms: float
    batch_size: int = 1
    correlation_id: str | None = None

    def __getitem__(self, name: str) -> NDArray[Any]:
        return self.outputs[name].tensor

    def __iter__(self) -> Iterator[ModelOutput]:
        return iter(self.outputs.values())

    @property
    def first(self) -> ModelOutput:
        """The model's first output (the usual single output of a classifier)."""
        return next(iter(self.outputs.values()))


def cast_to_float32(x: ArrayLike, *, scale: float | None = None) -> NDArray[np.float32]:
    """Cast a numeric array to float32, optionally multiplied by ``scale``.

    Args:
        x: bool, integer or floating array (``uint8`` pixels, for instance).
        scale: multiplier applied after the cast (``1/255`` maps pixels to [0, 1]).

    Returns:
        A float32 array of the same shape (no copy when ``x`` is float32 and no scale).

    Raises:
        TypeError: for non-numeric arrays (strings, objects, complex numbers).
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"cannot cast {arr.dtype} to float32")
    out = arr.astype(np.float32, copy=False)
    if scale is not None:
        out = out * np.float32(scale)
    return out


def nhwc_to_nchw(x: ArrayLike) -> NDArray[Any]:
    """Channels-last to channels-first: ``[N,H,W,C] -> [N,C,H,W]`` or ``[H,W,C] -> [C,H,W]``.

    Returns a C-contiguous array (what ONNX Runtime reads without another copy).

    Raises:
        ValueError: when the array is not of rank 3 or 4.
    """
    arr = np.asarray(x)
    if arr.ndim == 4:
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
    if arr.ndim == 3:
        return np.ascontiguousarray(arr.transpose(2, 0, 1))
    raise ValueError(f"nhwc_to_nchw needs rank 3 or 4, got shape {list(arr.shape)}")


def nchw_to_nhwc(x: ArrayLike) -> NDArray[Any]:
    """The inverse of :func:`nhwc_to_nchw`."""
    arr = np.asarray(x)
    if arr.ndim == 4:
        return np.ascontiguousarray(arr.transpose(0, 2, 3, 1))
    if arr.ndim == 3:
        return np.ascontiguousarray(arr.transpose(1, 2, 0))
    raise ValueError(f"nchw_to_nhwc needs rank 3 or 4, got shape {list(arr.shape)}")


def standardize(
    x: ArrayLike, mean: Sequence[float], std: Sequence[float], *, axis: int = -1
) -> NDArray[np.float32]:
    """``(x - mean) / std`` per channel along ``axis`` (channels-last by default), as float32.

    Raises:
        ValueError: when mean/std do not match the channel count or a std is not positive.
    """
    arr = cast_to_float32(x)
    if arr.ndim == 0:
        raise ValueError("standardize needs at least one dimension")
    channels = arr.shape[axis]
    m = np.asarray(mean, dtype=np.float32).reshape(-1)
    s = np.asarray(std, dtype=np.float32).reshape(-1)
    if m.size != channels or s.size != channels:
        raise ValueError(f"mean/std have {m.size}/{s.size} values, the channel axis has {channels}")
    if not np.all(s > 0):
        raise ValueError(f"std must be positive, got {s.tolist()}")
    shape = [1] * arr.ndim
    shape[axis] = channels
    out: NDArray[np.float32] = ((arr - m.reshape(shape)) / s.reshape(shape)).astype(
        np.float32, copy=False
    )
    return out


def softmax(x: ArrayLike, axis: int = -1) -> NDArray[np.float32]:
    """Numerically stable softmax as float32."""
    arr = cast_to_float32(x)
    shifted = np.exp(arr - arr.max(axis=axis, keepdims=True))
    out: NDArray[np.float32] = shifted / shifted.sum(axis=axis, keepdims=True)
    return out


def top_k(scores: ArrayLike, labels: Sequence[str], k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` best ``{"label", "score"}`` of one score vector (probabilities or logits).

    Scores that are not already a probability distribution are passed through softmax.
    Labels beyond the list are named ``class_<i>``.
    """
    row = cast_to_float32(scores).reshape(-1)
    if row.size == 0:
        return []
    if not (np.all(row >= 0) and abs(float(row.sum()) - 1.0) < 1e-3):
        row = softmax(row)
    order = np.argsort(-row, kind="stable")[: max(0, k)]
    return [
        {
            "label": labels[i] if i < len(labels) else f"class_{i}",
            "score": round(float(row[i]), 6),
        }
        for i in order
    ]
