"""Benchmark: Keras -> ONNX conversion and validation time per model; Keras vs ONNX accuracy.

For each trained model in ``models/`` (``image_classifier``, ``text_classifier``), in one run:

1. conversion: ``thunderline.convert.convert_keras`` of the committed ``keras/model.keras``
   into a scratch folder (best of ``--rounds``), beside the raw baseline measured in the same
   run: Keras' own ``model.export(format="onnx")`` alone, no I/O checks or renaming;
2. validation: ``validate_folder`` on that folder (seeded vectors + held-out samples);
3. accuracy on the held-out split through Keras and through ONNX Runtime (the full
   Fashion-MNIST test split, 10,000 images, when ``dataset-fashion-mnist`` is installed, else
   the committed ``heldout.npz``; the committed held-out documents for the text model). The two
   must be equal to 4 decimals (``accuracy_equal_4dp``).

Needs the ``convert`` extra. Usage: .venv/bin/python benchmarks/convert.py [--rounds 3]
The last line printed is one JSON object (ARCHITECTURE §9); ``ratio`` is raw export seconds
over our conversion seconds (higher is better; our conversion adds the checks).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")


def heldout(name: str, folder: Path) -> tuple[np.ndarray, np.ndarray, str]:
    if name == "image_classifier" and FASHION.is_dir():
        with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
        with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
        return (x / 255.0).astype(np.float32), y, "fashion-mnist t10k (10,000)"
    with np.load(folder / "heldout.npz") as data:
        x, y = data["x"], data["y"]
    dtype = np.int64 if x.dtype.kind in "iu" else np.float32
    return x.astype(dtype), y, f"heldout.npz ({len(y)})"


def bench_model(name: str, rounds: int, scratch: Path) -> dict[str, Any]:
    import keras
    import onnxruntime as ort

    from thunderline.convert import convert_keras, validate_folder

    folder = ROOT / "models" / name
    source = folder / "keras" / "model.keras"
    ours, raw = [], []
    out = scratch / name
    for i in range(rounds):
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        convert_keras(source, out, name=name)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        model = keras.saving.load_model(source, compile=False)
        x0 = np.zeros([1, *model.inputs[0].shape[1:]], dtype=model.inputs[0].dtype)
        model(x0)
        model.export(str(scratch / f"raw-{name}-{i}.onnx"), format="onnx", verbose=False)
        raw.append(time.perf_counter() - started)
    shutil.copyfile(folder / "heldout.npz", out / "heldout.npz")
    started = time.perf_counter()
    report = validate_folder(out, name=name, report_path=scratch / f"{name}.json")
    validation_s = time.perf_counter() - started
    x, y, split = heldout(name, folder)
    model = keras.saving.load_model(source, compile=False)
    keras_pred = np.concatenate(
        [np.asarray(model(x[i : i + 512], training=False)).argmax(1) for i in range(0, len(x), 512)]
    )
    session = ort.InferenceSession(str(out / "onnx" / "model.onnx"))
    input_name = session.get_inputs()[0].name
    onnx_pred = np.concatenate(
        [
            session.run(None, {input_name: x[i : i + 512]})[0].argmax(1)
            for i in range(0, len(x), 512)
        ]
    )
    acc_keras = float(np.mean(keras_pred == y))
    acc_onnx = float(np.mean(onnx_pred == y))
    return {
        "convert_s": round(min(ours), 3),
        "raw_export_s": round(min(raw), 3),
        "validate_s": round(validation_s, 3),
        "validation": report.status,
        "max_abs_diff": report.max_abs_diff,
        "heldout": split,
        "accuracy_keras": round(acc_keras, 4),
        "accuracy_onnx": round(acc_onnx, 4),
        "accuracy_equal_4dp": f"{acc_keras:.4f}" == f"{acc_onnx:.4f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    missing = [m for m in ("tensorflow", "keras", "tf2onnx") if importlib.util.find_spec(m) is None]
    if missing:  # a clear skip, not a traceback: `make bench` needs `make convert` for this one
        reason = f"needs the convert extra (missing {', '.join(missing)}): run `make convert`"
        print(f"convert: skipped, {reason}", file=sys.stderr)
        print(json.dumps({"name": "convert", "skipped": reason}))
        return
    import keras
    import onnxruntime as ort
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tl-bench-convert-") as tmp:
        for name in ("image_classifier", "text_classifier"):
            results[name] = bench_model(name, args.rounds, Path(tmp))
            print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    raw_total = sum(r["raw_export_s"] for r in results.values())
    ours_total = sum(r["convert_s"] for r in results.values())
    print(
        json.dumps(
            {
                "benchmark": "convert",
                "baseline": {
                    "what": "keras model.export(format='onnx') alone",
                    "seconds": raw_total,
                },
                "ours": {
                    "what": "thunderline convert_keras (export + renaming + I/O checks + onnx.checker)",
                    "seconds": ours_total,
                    "models": results,
                },
                "ratio": round(raw_total / ours_total, 3) if ours_total else None,
                "unit": "raw export seconds / our conversion seconds (best of rounds, summed)",
                "all_accuracy_equal_4dp": all(r["accuracy_equal_4dp"] for r in results.values()),
                "machine": {
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "tensorflow": tf.__version__,
                    "keras": keras.__version__,
                    "onnxruntime": ort.__version__,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
