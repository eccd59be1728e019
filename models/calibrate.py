"""Choose a model's confidence threshold (registry ``min_confidence``) on its held-out data.

Reads ``<model>/heldout.npz`` (``x``: inputs, ``y``: true classes; kept by the training
script, never seen in training) and runs ``<model>/onnx/model.onnx`` on it. The held-out set is
cut in two halves: on the first (calibration) half the threshold is the lowest one, on a 0.01
grid, at which the predictions whose best score reaches it are at least ``--precision`` right;
the second half checks it (how many are kept, how many of those are right). Prints one JSON
object. The threshold is then written into ``models/registry.toml`` by hand, with the figures
as a comment (the registry is outside the signed model folders, so no re-signing is needed).

Usage: ``python models/calibrate.py models/text_classifier --precision 0.99``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _scores(folder: Path) -> tuple[Any, Any]:
    import onnxruntime as ort

    data = np.load(folder / "heldout.npz")
    x, y = data["x"], data["y"]
    session = ort.InferenceSession(
        str(folder / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    spec = session.get_inputs()[0]
    dtype = np.int64 if "int64" in spec.type else np.float32
    probs = session.run(None, {spec.name: x.astype(dtype)})[0]
    return probs, y


def _kept(best: Any, right: Any, threshold: float) -> tuple[float, float]:
    mask = best >= threshold
    kept = float(mask.mean()) if len(mask) else 0.0
    precision = float(right[mask].mean()) if mask.any() else 1.0
    return kept, precision


def choose(best: Any, right: Any, precision: float) -> float:
    """The lowest threshold (0.01 grid) whose kept predictions are >= ``precision`` right."""
    for step in range(0, 100):
        threshold = step / 100
        if _kept(best, right, threshold)[1] >= precision:
            return threshold
    return 0.99


def main() -> int:
    """Choose and check the threshold of the model folder given, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("folder", type=Path, help="The model folder (models/<name>).")
    parser.add_argument("--precision", type=float, default=0.95)
    args = parser.parse_args()
    probs, y = _scores(args.folder)
    best, right = probs.max(axis=1), probs.argmax(axis=1) == y
    half = len(y) // 2
    threshold = choose(best[:half], right[:half], args.precision)
    calib = _kept(best[:half], right[:half], threshold)
    check = _kept(best[half:], right[half:], threshold)
    print(
        json.dumps(
            {
                "model": args.folder.name,
                "heldout": len(y),
                "accuracy": round(float(right.mean()), 4),
                "target_precision": args.precision,
                "min_confidence": threshold,
                "calibration": {
                    "n": half,
                    "kept": round(calib[0], 3),
                    "precision": round(calib[1], 4),
                },
                "check": {
                    "n": int(len(y) - half),
                    "kept": round(check[0], 3),
                    "precision": round(check[1], 4),
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
