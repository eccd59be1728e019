"""Train the Fashion-MNIST image classifier and publish it as ``models/image_classifier/``.

Data: Debian's ``dataset-fashion-mnist`` package (``apt-get install -y --no-install-recommends
dataset-fashion-mnist``): the original 60,000 training and 10,000 test images (28x28
grayscale, 10 classes) under ``/usr/share/datasets/fashion-mnist/``. The test split is the
held-out split. Seeded (``keras.utils.set_random_seed``), 2 threads; about a minute per epoch on
a quiet 2-core machine. Run from the repository root (needs the ``convert`` extra)::

    .venv/bin/python models/train_image.py [--epochs 4] --key ../shared/signing/model_signing_key.pem
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from publish import HERE, publish

DATA = Path("/usr/share/datasets/fashion-mnist")
NAME = "image_classifier"
SEED = 20261127
LABELS = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]
HELDOUT_SAMPLES = 500

README = """# image_classifier: Fashion-MNIST clothing classifier

A small convolutional network (two 3x3 convolutions with max pooling, a 128-unit dense layer,
softmax over 10 classes; {summary.parameters} parameters, {summary.nodes} ONNX nodes, opset
{summary.opset}, {summary.size_bytes} bytes) trained on **Fashion-MNIST**.

- **Data**: Debian package `dataset-fashion-mnist` (files under
  `/usr/share/datasets/fashion-mnist/`): 60,000 training and 10,000 test images of Zalando
  articles, 28x28 grayscale, light article on a dark background. Fashion-MNIST is MIT-licensed
  (Copyright (c) 2017 Zalando SE).
- **Training command** (from the repository root, seeded, 2 threads):
  `.venv/bin/python models/train_image.py --epochs {epochs}`
- **Held-out split**: the 10,000 test images. Accuracy: **{accuracy:.4f}** (Keras and ONNX
  Runtime agree to 4 decimals; see `VAL_REPORT.json`). `heldout.npz` keeps the first
  {heldout} of them for the validator, `sample_io.json` the first {samples} with their expected
  outputs.
- **Input** `{input_name}` float32 `[batch, 28, 28, 1]` (NHWC), pixels scaled to [0, 1]. The
  infer stage converts any image to this contract (`thunderline.ml.preprocess`): grayscale,
  resized and centre-cropped to 28x28, inverted when its background is light (the model was
  trained on dark backgrounds).
- **Output** `probabilities` float32 `[batch, 10]` (softmax).
- **Labels** (index order): {labels}.
- **Validation**: max abs difference Keras vs ONNX Runtime {report.max_abs_diff:.2e} over
  {report.vectors} vectors ({report.random_vectors} seeded random, {report.heldout_vectors}
  held-out); status {report.status}.
"""


def read_idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=header)


def load_split(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(DATA / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28, 1)
    labels = read_idx(DATA / f"{prefix}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    return (images.astype(np.float32) / 255.0), labels


def build_model(keras):  # type: ignore[no-untyped-def]
    layers = keras.layers
    inputs = keras.Input((28, 28, 1), name="pixels")
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.25, seed=SEED)(x)
    x = layers.Dense(128, activation="relu")(x)
    outputs = layers.Dense(len(LABELS), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--key",
        type=Path,
        required=True,
        help="EC P-256 private key that signs the folder (never inside the repository).",
    )
    parser.add_argument("--out", type=Path, default=HERE / NAME)
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"{DATA} is missing: apt-get install -y dataset-fashion-mnist", file=sys.stderr)
        return 2
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    x_train, y_train = load_split("train")
    x_test, y_test = load_split("t10k")
    model = build_model(keras)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, shuffle=True, verbose=2)
    print(f"trained in {time.perf_counter() - started:.1f}s")
    _, accuracy = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
    print(f"held-out accuracy (10,000 test images): {accuracy:.4f}")
    samples = 8
    readme = README.replace("{epochs}", str(args.epochs))
    readme = readme.replace("{accuracy:.4f}", f"{accuracy:.4f}")
    readme = readme.replace("{heldout}", str(HELDOUT_SAMPLES)).replace("{samples}", str(samples))
    readme = readme.replace("{input_name}", "pixels").replace("{labels}", ", ".join(LABELS))
    publish(
        model,
        args.out,
        name=NAME,
        labels=LABELS,
        heldout=(x_test[:HELDOUT_SAMPLES], y_test[:HELDOUT_SAMPLES]),
        samples=samples,
        entry={
            "version": "2.0.0",
            "kind": "image",
            "input_shape": ["batch", 28, 28, 1],
            "layout": "NHWC",
            "mean": [0.0],
            "std": [1.0],
            "background": "dark",
            "min_width": 28,
            "min_height": 28,
            "channels": 1,
            "min_confidence": 0.7,
            "preload": True,
            "heldout_accuracy": round(float(accuracy), 4),
            "description": "Fashion-MNIST CNN, 28x28 grayscale (trained, models/train_image.py).",
        },
        readme=readme,
        key=args.key,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
