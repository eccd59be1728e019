"""Equivalence of a model folder's Keras and ONNX models -> ``VAL_REPORT.json``.

The same inputs go through Keras (``keras/model.keras``) and ONNX Runtime
(``onnx/model.onnx``): a fixed, seeded set of random vectors built from the Keras input spec
(floats uniform in [0, 1), token ids uniform over the first embedding's vocabulary) and the
folder's real held-out samples (``heldout.npz``: ``x`` and, if present, labels ``y``). The
report gives the largest and mean absolute difference of the outputs, the share of vectors
whose top-1 class agrees, the held-out accuracy of both runtimes, and ``status`` ``PASS`` when
the largest difference is within the tolerance (1e-4), else ``FAIL``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray

from thunderline.convert.converter import KERAS_FILE, ONNX_FILE, keras_io
from thunderline.convert.errors import ConvertError
from thunderline.convert.keras_file import import_keras, load_keras_model
from thunderline.ml.registry import check_external_data

TOLERANCE = 1e-4
REPORT_FILE = "VAL_REPORT.json"
HELDOUT_FILE = "heldout.npz"
RANDOM_VECTORS = 64
SEED = 20261127
_BATCH = 256


@dataclass(frozen=True)
class ValidationReport:
    """The content of ``VAL_REPORT.json``."""

    model: str
    status: str
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    tolerance: float
    vectors: int
    random_vectors: int
    heldout_vectors: int
    heldout_accuracy_keras: float | None
    heldout_accuracy_onnx: float | None
    seed: int
    opset: int
    keras_version: str
    tensorflow_version: str
    onnx_version: str
    onnxruntime_version: str
    timestamp: str
    seconds: float

    @property
    def passed(self) -> bool:
        """True when the converted model matched the original within tolerance."""
        return self.status == "PASS"

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return asdict(self)

    def to_json(self) -> str:
        """The report as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"


def random_vectors(model: Any, count: int, seed: int) -> NDArray[Any]:
    """``count`` seeded vectors for the model's (single) input."""
    inputs, _ = keras_io(model)
    if len(inputs) != 1:
        raise ConvertError(f"validation supports single-input models, got {len(inputs)} inputs")
    spec = inputs[0]
    shape = [count, *[d or 1 for d in spec.shape[1:]]]
    rng = np.random.default_rng(seed)
    if np.dtype(spec.dtype).kind in "iu":
        vocab = next(
            (int(layer.input_dim) for layer in model.layers if hasattr(layer, "input_dim")), 256
        )
        return rng.integers(0, vocab, shape).astype(spec.dtype)
    return rng.random(shape, dtype=np.float32).astype(spec.dtype)


def load_heldout(folder: Path) -> tuple[NDArray[Any] | None, NDArray[Any] | None]:
    """``(x, y)`` from ``folder/heldout.npz`` (``(None, None)`` when the folder has none)."""
    path = folder / HELDOUT_FILE
    if not path.is_file():
        return None, None
    try:
        with np.load(path, allow_pickle=False) as data:
            x = np.asarray(data["x"])
            y = np.asarray(data["y"]) if "y" in data.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise ConvertError(f"{path}: cannot read held-out samples: {exc}") from exc
    return x, y


def _onnx_session(path: Path) -> tuple[ort.InferenceSession, int]:
    try:
        data = path.read_bytes()
        proto = onnx.load_model_from_string(data)
    except Exception as exc:
        raise ConvertError(f"{path}: not a readable ONNX model: {type(exc).__name__}") from exc
    external = check_external_data(proto, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    source: Any = str(path) if external else data
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return session, opset


def _run_keras(model: Any, x: NDArray[Any]) -> NDArray[np.float32]:
    parts = [np.asarray(model(x[i : i + _BATCH], training=False)) for i in range(0, len(x), _BATCH)]
    return np.concatenate(parts).astype(np.float32)


def _run_onnx(session: ort.InferenceSession, x: NDArray[Any]) -> NDArray[np.float32]:
    name = session.get_inputs()[0].name
    parts = [session.run(None, {name: x[i : i + _BATCH]})[0] for i in range(0, len(x), _BATCH)]
    return np.concatenate(parts).astype(np.float32)


def validate_folder(
    folder: Path,
    *,
    name: str | None = None,
    tolerance: float = TOLERANCE,
    seed: int = SEED,
    count: int = RANDOM_VECTORS,
    report_path: Path | None = None,
    onnx_path: Path | None = None,
) -> ValidationReport:
    """Compare the folder's Keras and ONNX models; write the report to ``report_path``.

    ``report_path`` defaults to ``folder/VAL_REPORT.json``; ``onnx_path`` to the folder's
    ``onnx/model.onnx``.

    Raises:
        ConvertError (and its subclasses) when either model cannot be loaded or run.
    """
    started = time.perf_counter()
    folder = Path(folder)
    keras = import_keras()
    import tensorflow as tf

    model = load_keras_model(folder / KERAS_FILE)
    session, opset = _onnx_session(onnx_path or folder / ONNX_FILE)
    x_random = random_vectors(model, count, seed)
    x_held, y_held = load_heldout(folder)
    x = x_random if x_held is None else np.concatenate([x_random, x_held.astype(x_random.dtype)])
    try:
        want = _run_keras(model, x)
        got = _run_onnx(session, x)
    except Exception as exc:
        raise ConvertError(
            f"{folder}: running the models failed: {type(exc).__name__}: {exc}"
        ) from exc
    if want.shape != got.shape:
        raise ConvertError(f"{folder}: output shapes differ: Keras {want.shape}, ONNX {got.shape}")
    diff = np.abs(want.astype(np.float64) - got.astype(np.float64))
    max_diff = float(diff.max()) if diff.size else 0.0
    agree = float(np.mean(want.argmax(-1) == got.argmax(-1))) if want.ndim > 1 else 1.0
    acc_keras = acc_onnx = None
    if x_held is not None and y_held is not None:
        held = slice(len(x_random), None)
        acc_keras = float(np.mean(want[held].argmax(-1) == y_held))
        acc_onnx = float(np.mean(got[held].argmax(-1) == y_held))
    report = ValidationReport(
        model=name or folder.resolve().name,
        status="PASS" if np.isfinite(max_diff) and max_diff <= tolerance else "FAIL",
        max_abs_diff=max_diff,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        top1_agreement=agree,
        tolerance=tolerance,
        vectors=len(x),
        random_vectors=len(x_random),
        heldout_vectors=0 if x_held is None else len(x_held),
        heldout_accuracy_keras=acc_keras,
        heldout_accuracy_onnx=acc_onnx,
        seed=seed,
        opset=opset,
        keras_version=str(keras.__version__),
        tensorflow_version=str(tf.__version__),
        onnx_version=str(onnx.__version__),
        onnxruntime_version=str(ort.__version__),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 3),
    )
    target = report_path or folder / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(report.to_json(), encoding="utf-8")
    return report
