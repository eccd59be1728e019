"""Open a Keras 3 ``.keras`` file safely: check the archive first, import Keras lazily.

A ``.keras`` file is a zip archive holding ``config.json``, ``metadata.json`` and
``model.weights.h5``. The archive is checked before Keras is imported, so a missing, truncated
or foreign file fails fast with :class:`NotAKerasModelError` naming it. Keras is loaded with
``safe_mode=True`` (no lambda deserialisation) and every layer must be a class Keras ships:
a custom layer cannot be rebuilt from the file alone, nor exported, so it is refused with
:class:`UnsupportedLayerError`.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

from thunderline.convert.errors import (
    ConvertUnavailableError,
    NotAKerasModelError,
    UnsupportedLayerError,
)

INSTALL_HINT = (
    "the Keras converter needs TensorFlow and Keras: install the `convert` extra "
    "(`pip install --require-hashes -r requirements-convert.lock`, or `make models`)"
)
_KERAS_MODULE = re.compile(r"^keras(\.|$)")


def import_keras() -> ModuleType:
    """Import Keras (TensorFlow backend) quietly; a clear error when the extra is absent."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import importlib

        keras: ModuleType = importlib.import_module("keras")
        importlib.import_module("tensorflow")  # the backend must be importable too
    except ImportError as exc:
        raise ConvertUnavailableError(f"{INSTALL_HINT} ({exc})") from exc
    return keras


def check_archive(path: Path) -> dict[str, Any]:
    """The ``config.json`` of a ``.keras`` archive, after checking it is one.

    Raises:
        NotAKerasModelError: not a regular file, not a zip (or truncated), or no Keras config.
    """
    if not path.is_file():
        raise NotAKerasModelError(f"{path}: not a file", details={"file": str(path)})
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names or "model.weights.h5" not in names:
                raise NotAKerasModelError(
                    f"{path}: not a Keras model file (a zip without config.json and "
                    "model.weights.h5)",
                    details={"file": str(path)},
                )
            bad = archive.testzip()
            if bad is not None:
                raise NotAKerasModelError(
                    f"{path}: damaged Keras model file (member {bad} fails its CRC)",
                    details={"file": str(path)},
                )
            config: dict[str, Any] = json.loads(archive.read("config.json"))
    except NotAKerasModelError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise NotAKerasModelError(
            f"{path}: not a Keras model file (truncated or not a .keras archive: {exc})",
            details={"file": str(path)},
        ) from exc
    return config


def foreign_layers(config: dict[str, Any]) -> list[str]:
    """Class names in a Keras config whose module is not Keras' own (custom layers)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "class_name" in node and "config" in node:
                module = node.get("module")
                registered = node.get("registered_name")
                custom = isinstance(registered, str) and ">" in registered
                if (isinstance(module, str) and not _KERAS_MODULE.match(module)) or custom:
                    found.append(str(registered or node["class_name"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return sorted(set(found))


def load_keras_model(path: Path) -> Any:
    """Load a ``.keras`` model for inference (no compile), refusing custom layers.

    Raises:
        NotAKerasModelError, UnsupportedLayerError, ConvertUnavailableError.
    """
    config = check_archive(path)
    custom = foreign_layers(config)
    if custom:
        raise UnsupportedLayerError(
            f"{path}: unsupported layer(s) {', '.join(custom)}: only layers Keras ships can "
            "be converted (a custom layer's code is not in the file)",
            details={"file": str(path), "layers": custom},
        )
    keras = import_keras()
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Could not locate" in message or "Unknown layer" in message:
            raise UnsupportedLayerError(
                f"{path}: unsupported layer: {message[:300]}", details={"file": str(path)}
            ) from exc
        raise NotAKerasModelError(
            f"{path}: Keras cannot load it: {type(exc).__name__}: {message[:300]}",
            details={"file": str(path)},
        ) from exc
    if not hasattr(model, "inputs") or not model.inputs:
        raise NotAKerasModelError(
            f"{path}: the model has no defined inputs (subclassed models are not supported)",
            details={"file": str(path)},
        )
    return model
