"""Train the document-kind text classifier and publish it as ``models/text_classifier/``.

Task: tell the kind of a text document from its first 512 bytes: ``licence``, ``changelog``,
``readme``, ``manpage`` or ``source``. Data: this Debian machine's own files, labelled by file
name and place (no download):

- ``licence``: ``/usr/share/doc/*/copyright``, ``COPYING*``, ``LICENSE*`` and
  ``/usr/share/common-licenses/*``;
- ``changelog``: ``/usr/share/doc/*/changelog*``, ``NEWS*``, ``HISTORY*``, ``CHANGES*``;
- ``readme``: ``/usr/share/doc/*/README*``;
- ``manpage``: ``/usr/share/man/man[1-8]/*`` (roff sources, English);
- ``source``: code files (``.c .h .py .pl .pm .sh .awk .rb .js .el``) under
  ``/usr/share/doc/*/examples``, ``/usr/lib/python3.11``, ``/usr/include`` and
  ``/usr/share/perl``.

``.gz`` files are decompressed. The build is deterministic for a given set of installed
packages (sorted walk, seeded selection, at most ``--per-class`` files per class); **it
depends on the packages installed on the machine**, so another machine gives another (similar)
data set: the README records the counts and a digest of the file list. The split is by group
(the package for /usr/share/doc, the page name for manual pages, the file for source), one
group in five held out, so no package is on both sides. Tokens are the ``utf8_bytes`` ids the
infer stage uses (``thunderline.ml.preprocess.utf8_byte_ids``). Run from the repository root::

    .venv/bin/python models/train_text.py [--epochs 8] --key ../shared/signing/model_signing_key.pem
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from publish import HERE, publish
from thunderline.ml.preprocess import utf8_byte_ids

NAME = "text_classifier"
SEED = 20261127
SEQ_LEN = 512
LABELS = ["licence", "changelog", "readme", "manpage", "source"]
SOURCE_SUFFIXES = {".c", ".h", ".py", ".pl", ".pm", ".sh", ".awk", ".rb", ".js", ".el"}
SOURCE_ROOTS = [
    Path("/usr/lib/python3.11"),
    Path("/usr/include"),
    Path("/usr/share/perl"),
]
DOC = Path("/usr/share/doc")
MAN = Path("/usr/share/man")
LICENSES = Path("/usr/share/common-licenses")

README = """# text_classifier: document kind (licence, changelog, README, manual page, source)

A byte-level convolutional network (embedding of the 256 byte values, two 1-D convolutions,
global max pooling, softmax over 5 classes; {parameters} parameters, {nodes} ONNX nodes,
opset {opset}, {size} bytes) that tells the kind of a text document from its first 512 bytes.

- **Data**: files of this Debian machine labelled by name and place (see the docstring of
  `models/train_text.py`): licences (`/usr/share/doc/*/copyright`, `/usr/share/common-licenses`),
  changelogs (`changelog*`, `NEWS*`), READMEs, manual pages (`/usr/share/man/man[1-8]`, roff)
  and source code (`/usr/lib/python3.11`, `/usr/include`, `/usr/share/perl`, doc examples).
  **The data set depends on the packages installed on the machine**: the build is deterministic
  for a given machine (sorted walk, seeded choice, at most {per_class} files per class).
  This build: {counts}; file-list digest `{digest}`.
  Licences: each file keeps its own package's licence; the files are read, not redistributed
  (only byte ids of {heldout} held-out snippets are kept in `heldout.npz`).
- **Training command** (from the repository root, seeded, 2 threads):
  `.venv/bin/python models/train_text.py --epochs {epochs}`
- **Held-out split**: one group in five (the package for /usr/share/doc, the page name for
  manual pages, the file for source), {heldout} documents. Accuracy: **{accuracy:.4f}** (Keras
  and ONNX Runtime agree to 4 decimals; see `VAL_REPORT.json`). `sample_io.json` keeps {samples}
  held-out samples with their expected outputs.
- **Input** `input_ids` int64 `[batch, 512]`: tokenizer `utf8_bytes` (the first 512 bytes of
  the UTF-8 text, invalid bytes replaced by U+FFFD, zero padded).
- **Output** `probabilities` float32 `[batch, 5]` (softmax).
- **Labels** (index order): {labels}.
- **Validation**: max abs difference Keras vs ONNX Runtime {max_diff:.2e} over {vectors}
  vectors; status {status}.
"""


def doc_label(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".gz")
    if name == "copyright" or name.startswith(("copying", "license", "licence")):
        return "licence"
    if name.startswith(("changelog", "news", "history", "changes")):
        return "changelog"
    if name.startswith("readme"):
        return "readme"
    if path.suffix.lower() in SOURCE_SUFFIXES and "examples" in path.parts:
        return "source"
    return None


def walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (Path(top) / d).is_symlink())
        found.extend(Path(top) / f for f in sorted(files) if not (Path(top) / f).is_symlink())
    return found


def candidates() -> list[tuple[Path, str, str]]:
    """(path, label, group) for every labelled file, in a fixed order."""
    items: list[tuple[Path, str, str]] = []
    for path in walk(DOC):
        label = doc_label(path)
        if label:
            items.append((path, label, path.relative_to(DOC).parts[0]))
    items.extend((p, "licence", "common-licenses") for p in walk(LICENSES))
    for section in sorted(MAN.glob("man[1-8]")):
        items.extend((p, "manpage", p.name.split(".")[0]) for p in walk(section))
    for root in SOURCE_ROOTS:
        for path in walk(root):
            if path.suffix in SOURCE_SUFFIXES:
                items.append((path, "source", str(path.with_suffix(""))))
    return items


def read_head(path: Path, size: int = 4096) -> bytes | None:
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            data: bytes = handle.read(size)
    except (OSError, EOFError):
        return None
    head = data[:SEQ_LEN]
    if len(head.strip()) < 64 or b"\x00" in head:
        return None
    return data


def held_out(group: str) -> bool:
    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % 5 == 0


def build_dataset(per_class: int) -> tuple[np.ndarray, ...]:
    """x_train, y_train, x_test, y_test (uint8 ids) and the list digest."""
    rng = np.random.default_rng(SEED)
    by_label: dict[str, list[tuple[Path, str]]] = {label: [] for label in LABELS}
    for path, label, group in candidates():
        by_label[label].append((path, group))
    chosen: list[tuple[Path, str, str]] = []
    for label in LABELS:
        items = by_label[label]
        order = rng.permutation(len(items))
        kept = 0
        for index in order:
            path, group = items[int(index)]
            data = read_head(path)
            if data is None:
                continue
            chosen.append((path, label, group))
            kept += 1
            if kept >= per_class:
                break
    chosen.sort(key=lambda t: str(t[0]))
    digest = hashlib.sha256("\n".join(f"{p}\t{lbl}" for p, lbl, _ in chosen).encode())
    xs: dict[bool, list[np.ndarray]] = {False: [], True: []}
    ys: dict[bool, list[int]] = {False: [], True: []}
    for path, label, group in chosen:
        data = read_head(path) or b""
        side = held_out(group)
        xs[side].append(utf8_byte_ids(data, SEQ_LEN).astype(np.uint8))
        ys[side].append(LABELS.index(label))
    return (
        np.stack(xs[False]),
        np.array(ys[False], dtype=np.int64),
        np.stack(xs[True]),
        np.array(ys[True], dtype=np.int64),
        np.array(digest.hexdigest()[:16]),
    )


def build_model(keras):  # type: ignore[no-untyped-def]
    layers = keras.layers
    inputs = keras.Input((SEQ_LEN,), dtype="int64", name="input_ids")
    x = layers.Embedding(256, 32)(inputs)
    x = layers.Conv1D(64, 5, activation="relu")(x)
    x = layers.MaxPooling1D(4)(x)
    x = layers.Conv1D(96, 5, activation="relu")(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dropout(0.2, seed=SEED)(x)
    outputs = layers.Dense(len(LABELS), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument(
        "--key",
        type=Path,
        required=True,
        help="EC P-256 private key that signs the folder (never inside the repository).",
    )
    parser.add_argument("--out", type=Path, default=HERE / NAME)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    x_train, y_train, x_test, y_test, digest = build_dataset(args.per_class)
    counts = {
        label: f"{int((y_train == i).sum())}+{int((y_test == i).sum())}"
        for i, label in enumerate(LABELS)
    }
    print(
        f"data set: {counts} (train+held-out), digest {digest} ({time.perf_counter() - started:.1f}s)"
    )
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    model = build_model(keras)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    model.fit(
        x_train.astype(np.int64),
        y_train,
        batch_size=64,
        epochs=args.epochs,
        shuffle=True,
        verbose=2,
    )
    print(f"trained in {time.perf_counter() - started:.1f}s")
    _, accuracy = model.evaluate(x_test.astype(np.int64), y_test, batch_size=256, verbose=0)
    print(f"held-out accuracy ({len(y_test)} documents): {accuracy:.4f}")
    samples = 10
    fields = {
        "{per_class}": str(args.per_class),
        "{counts}": ", ".join(f"{k} {v}" for k, v in counts.items()) + " (train+held-out)",
        "{digest}": str(digest),
        "{heldout}": str(len(y_test)),
        "{epochs}": str(args.epochs),
        "{accuracy:.4f}": f"{accuracy:.4f}",
        "{samples}": str(samples),
        "{labels}": ", ".join(LABELS),
    }
    readme = README
    for key, value in fields.items():
        readme = readme.replace(key, value)
    readme = readme.replace("{parameters}", "{summary.parameters}").replace(
        "{nodes}", "{summary.nodes}"
    )
    readme = readme.replace("{opset}", "{summary.opset}").replace("{size}", "{summary.size_bytes}")
    readme = readme.replace("{max_diff:.2e}", "{report.max_abs_diff:.2e}")
    readme = readme.replace("{vectors}", "{report.vectors}").replace("{status}", "{report.status}")
    publish(
        model,
        args.out,
        name=NAME,
        labels=LABELS,
        heldout=(x_test, y_test),
        samples=samples,
        entry={
            "version": "2.0.0",
            "kind": "text",
            "input_shape": ["batch", SEQ_LEN],
            "tokenizer": "utf8_bytes",
            "languages": ["en"],
            "min_bytes": 64,
            "min_confidence": 0.91,
            "preload": False,
            "heldout_accuracy": round(float(accuracy), 4),
            "description": "Document kind from the first 512 bytes (trained, models/train_text.py).",
        },
        readme=readme,
        key=args.key,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
