"""A model's I/O spec (names, shapes with symbolic dimensions, dtypes) and the input check.

Every request is checked against the spec before ONNX Runtime sees it, so a wrong rank, shape
or dtype or a missing input is a :class:`ModelInputError` naming what was expected and what
came, never an ONNX Runtime crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thunderline.ml.errors import ModelInputError

Dim = int | str | None

#: ONNX Runtime type strings -> NumPy dtypes.
ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


def _fmt_shape(shape: tuple[Dim, ...] | tuple[int, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: name, shape (ints, symbolic names or None) and dtype."""

    name: str
    shape: tuple[Dim, ...]
    dtype: np.dtype[Any]
    onnx_type: str

    @property
    def rank(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def has_dynamic_batch(self) -> bool:
        """True when the first dimension is symbolic (or unknown)."""
        return bool(self.shape) and not isinstance(self.shape[0], int)

    def describe(self) -> str:
        """``dtype[shape]`` for messages."""
        return f"{self.dtype}{_fmt_shape(self.shape)}"

    def to_dict(self) -> dict[str, Any]:
        """The tensor spec as JSON-ready data."""
        return {"name": self.name, "shape": list(self.shape), "dtype": str(self.dtype)}

    @classmethod
    def from_node_arg(cls, arg: Any) -> TensorSpec:
        """From an ONNX Runtime ``NodeArg`` (``session.get_inputs()`` item)."""
        dims: list[Dim] = []
        for d in arg.shape or []:
            if (isinstance(d, int) and d >= 0) or (isinstance(d, str) and d):
                dims.append(d)
            else:
                dims.append(None)
        dtype = np.dtype(ORT_DTYPES.get(arg.type, np.object_))
        return cls(name=arg.name, shape=tuple(dims), dtype=dtype, onnx_type=arg.type)


@dataclass(frozen=True)
class IOSpec:
    """All inputs and outputs of a model, in the model's order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        """Input names, in session order."""
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """Output names, in session order."""
        return [t.name for t in self.outputs]

    @property
    def dynamic_batch(self) -> bool:
        """True when every input and output has a symbolic first (batch) dimension."""
        tensors = (*self.inputs, *self.outputs)
        return bool(tensors) and all(t.has_dynamic_batch for t in tensors)

    def to_dict(self) -> dict[str, Any]:
        """The I/O spec as JSON-ready data."""
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "dynamic_batch": self.dynamic_batch,
        }

    @classmethod
    def from_session(cls, session: Any) -> IOSpec:
        """The I/O spec of an ONNX Runtime session."""
        return cls(
            inputs=tuple(TensorSpec.from_node_arg(a) for a in session.get_inputs()),
            outputs=tuple(TensorSpec.from_node_arg(a) for a in session.get_outputs()),
        )

    def check(self, feeds: Mapping[str, Any]) -> int:
        """Check ``feeds`` against the spec; return the batch size (first dim of the inputs).

        Raises:
            ModelInputError: missing or unexpected input, not an array, wrong dtype, wrong
                rank, a fixed dimension that differs, an empty dimension, or one symbolic
                dimension given two different sizes.
        """
        expected = self.input_names
        missing = [n for n in expected if n not in feeds]
        if missing:
            raise ModelInputError(
                f"missing input {missing[0]!r}: expected inputs {expected}, got {sorted(feeds)}",
                details={"expected": expected, "got": sorted(feeds)},
            )
        unexpected = sorted(set(feeds) - set(expected))
        if unexpected:
            raise ModelInputError(
                f"unexpected input {unexpected[0]!r}: expected inputs {expected}, "
                f"got {sorted(feeds)}",
                details={"expected": expected, "got": sorted(feeds)},
            )
        symbols: dict[str, tuple[int, str]] = {}
        batch = 1
        for spec in self.inputs:
            value = feeds[spec.name]
            if not isinstance(value, np.ndarray):
                raise ModelInputError(
                    f"input {spec.name!r}: expected a numpy array {spec.describe()}, "
                    f"got {type(value).__name__}",
                    details={"input": spec.name, "expected": spec.describe()},
                )
            got = f"{value.dtype}{_fmt_shape(tuple(value.shape))}"
            details = {"input": spec.name, "expected": spec.describe(), "got": got}
            if value.dtype != spec.dtype:
                raise ModelInputError(
                    f"input {spec.name!r}: expected dtype {spec.dtype}, got {value.dtype} "
                    f"(expected {spec.describe()}, got {got})",
                    details=details,
                )
            if value.ndim != spec.rank:
                raise ModelInputError(
                    f"input {spec.name!r}: expected rank {spec.rank} {spec.describe()}, "
                    f"got rank {value.ndim} {got}",
                    details=details,
                )
            for axis, (want, have) in enumerate(zip(spec.shape, value.shape, strict=True)):
                if have == 0:
                    raise ModelInputError(
                        f"input {spec.name!r}: dimension {axis} is empty "
                        f"(expected {spec.describe()}, got {got})",
                        details=details,
                    )
                if isinstance(want, int) and want != have:
                    raise ModelInputError(
                        f"input {spec.name!r}: expected shape {spec.describe()}, got {got} "
                        f"(dimension {axis} must be {want})",
                        details=details,
                    )
                if isinstance(want, str):
                    seen = symbols.setdefault(want, (have, spec.name))
                    if seen[0] != have:
                        raise ModelInputError(
                            f"input {spec.name!r}: dimension {want!r} is {have} here but "
                            f"{seen[0]} in input {seen[1]!r}",
                            details=details,
                        )
            if value.ndim:
                batch = int(value.shape[0])
        return batch

    def dummy_inputs(self, batch: int = 1) -> dict[str, NDArray[Any]]:
        """Inputs that satisfy the spec (symbolic dims -> ``batch`` for the first, else 1).

        Floats are a fixed smooth ramp in [-1, 1]; integers are small non-negative values.
        Used by the health probe and by batch-size calibration.
        """
        feeds: dict[str, NDArray[Any]] = {}
        for spec in self.inputs:
            shape = tuple(
                d if isinstance(d, int) else (batch if axis == 0 else 1)
                for axis, d in enumerate(spec.shape)
            )
            size = int(np.prod(shape)) if shape else 1
            if spec.dtype.kind == "f":
                arr: NDArray[Any] = np.linspace(-1.0, 1.0, size, dtype=np.float64)
            elif spec.dtype.kind in "iu":
                arr = np.arange(size, dtype=np.int64) % 97 + 1
            elif spec.dtype.kind == "b":
                arr = np.arange(size) % 2 == 0
            else:
                arr = np.array(["probe"] * size, dtype=object)
            feeds[spec.name] = arr.astype(spec.dtype).reshape(shape)
        return feeds
