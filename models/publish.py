"""Turn a trained Keras model into a registry model folder (used by train_image.py / train_text.py).

Writes ``<folder>/keras/model.keras``, ``onnx/model.onnx`` (``thunderline.convert``),
``heldout.npz`` (held-out samples the validator replays), ``sample_io.json`` (a few held-out
inputs with their label and the expected output), ``VAL_REPORT.json``, ``README.md``,
``checksums.txt`` and, with a private key, ``model.sig``; then updates the model's entry in
``registry.toml``.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from thunderline.convert import convert_keras, validate_folder
from thunderline.ml.trust import sign_folder, write_checksums

HERE = Path(__file__).resolve().parent
REGISTRY = HERE / "registry.toml"
REGISTRY_HEADER = """\
# Thunderline model registry (TL_ONNX_MODEL_DIR). Written by models/train_*.py; after an edit,
# refresh sha256 with `thunderline models checksum PATH` and re-sign the folder
# (`thunderline models sign DIR --key K`). Paths are relative to this folder.
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def update_registry(entry: dict[str, Any], registry: Path = REGISTRY) -> None:
    """Replace (or append) ``entry`` by name in ``registry.toml``."""
    entries = tomllib.loads(registry.read_text())["models"] if registry.is_file() else []
    entries = [e for e in entries if e["name"] != entry["name"]]
    entries.append(entry)
    entries.sort(key=lambda e: 0 if e.get("kind") == "image" else 1)
    lines = [REGISTRY_HEADER]
    for item in entries:
        lines.append("[[models]]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in item.items())
        lines.append("")
    registry.write_text("\n".join(lines))


def sample_io(model: Any, x: np.ndarray, y: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """A few held-out inputs (model-ready), their true label and the Keras output."""
    out = np.asarray(model(x, training=False))
    dtype = str(x.dtype)
    samples = []
    for i in range(len(x)):
        values = x[i].round(6).tolist() if x.dtype.kind == "f" else x[i].tolist()
        samples.append(
            {
                "label": labels[int(y[i])],
                "input": values,
                "output": [round(float(v), 6) for v in out[i]],
            }
        )
    return {
        "input_name": model.inputs[0].name,
        "input_shape": [None, *x.shape[1:]],
        "dtype": dtype,
        "labels": labels,
        "samples": samples,
    }


def publish(
    model: Any,
    folder: Path,
    *,
    name: str,
    labels: list[str],
    heldout: tuple[np.ndarray, np.ndarray],
    samples: int,
    entry: dict[str, Any],
    readme: str,
    key: Path | None,
) -> dict[str, Any]:
    """Write the model folder and its registry entry; the validation report as a dict."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("model.sig", "checksums.txt"):
        (folder / stale).unlink(missing_ok=True)
    keras_path = folder / "keras" / "model.keras"
    keras_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(keras_path)
    x_held, y_held = heldout
    np.savez_compressed(folder / "heldout.npz", x=x_held, y=y_held)
    io = sample_io(model, x_held[:samples], y_held[:samples], labels)
    (folder / "sample_io.json").write_text(json.dumps(io, separators=(",", ":")) + "\n")
    summary = convert_keras(keras_path, folder, name=name, labels=labels)
    print(summary.line())
    report = validate_folder(folder, name=name)
    print(f"validation: {report.status} max_abs_diff={report.max_abs_diff:.3g}")
    (folder / "README.md").write_text(readme.format(report=report, summary=summary))
    if key is not None and key.is_file():
        sign_folder(folder, key)
        print(f"signed {folder} with {key}")
    else:
        write_checksums(folder)
        print(f"NOT signed (no key at {key}): run `thunderline models sign {folder} --key K`")
    onnx_file = (folder / "onnx" / "model.onnx").resolve()
    digest = hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    if onnx_file.is_relative_to(HERE):
        onnx_rel = onnx_file.relative_to(HERE).as_posix()
        update_registry(
            {"name": name, "path": onnx_rel, **entry, "sha256": digest, "labels": labels}
        )
    else:
        print(f"{folder} is outside {HERE}: registry.toml not updated (sha256 {digest})")
    return report.to_dict()
