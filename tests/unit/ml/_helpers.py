"""Helpers for the ML tests: tiny ONNX models, registry files, signing, tampering.

``MODELS`` is the signed copy of the seeded-random test models (``tests/fixtures/models``,
see its ``signed.py``); ``REAL_MODELS`` is the repository's registry of trained models
(``models/``).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tests.fixtures.models.signed import (
    FIXTURE_MODELS,
    MODELS,
    MODELS_KEY,
    sign_with_throwaway_key,
    signed_fixture_models,
    throwaway_key,
)

from thunderline.obs.logs import LIBRARY_LOGGERS

REPO = Path(__file__).resolve().parents[3]
REAL_MODELS = REPO / "models"
__all__ = [
    "FIXTURE_MODELS",
    "MODELS",
    "MODELS_KEY",
    "REAL_MODELS",
    "REPO",
    "sign_with_throwaway_key",
    "signed_fixture_models",
    "throwaway_key",
]


def drop_cli_log_handlers() -> None:
    """Remove the stderr handlers a CLI call installed (bound to CliRunner's closed stream)."""
    for name in ("thunderline", *LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(handler, "_thunderline", False):
                logger.removeHandler(handler)


def tiny_model(
    *,
    batch: int | str = "batch",
    two_inputs: bool = False,
    external: str | None = None,
    name: str = "tiny",
) -> onnx.ModelProto:
    """x float32 [batch, 4] (and optionally z [batch, 4]) -> y = softmax(x @ W) [batch, 3].

    With ``external``, W is stored as external data at that location (not written here).
    """
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0
    weight = numpy_helper.from_array(w, "W")
    if external is not None:
        weight.ClearField("float_data")
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", external), ("offset", "0"), ("length", "48")):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])]
    nodes = []
    source = "x"
    if two_inputs:
        inputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [batch, 4]))
        nodes.append(helper.make_node("Add", ["x", "z"], ["xz"]))
        source = "xz"
    nodes += [
        helper.make_node("MatMul", [source, "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        initializer=[weight],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests"
    )
    model.ir_version = 8
    prop = model.metadata_props.add()
    prop.key, prop.value = "labels", '["a", "b", "c"]'
    return model


def tiny_bytes(**kwargs: Any) -> bytes:
    return tiny_model(**kwargs).SerializeToString()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_registry(folder: Path, entries: list[dict[str, Any]]) -> Path:
    """A registry.toml with ``entries`` (values written as TOML)."""
    lines = []
    for entry in entries:
        lines.append("[[models]]")
        for key, value in entry.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str):
                text = f'"{value}"'
            else:
                text = repr(value).replace("'", '"')
            lines.append(f"{key} = {text}")
        lines.append("")
    path = folder / "registry.toml"
    path.write_text("\n".join(lines))
    return path


def copy_models(target: Path, source: Path | None = None) -> Path:
    """Copy a signed model registry (default :data:`MODELS`) to ``target``, modes 644/755."""
    shutil.copytree(source or MODELS, target, copy_function=shutil.copyfile)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def tamper(path: Path) -> None:
    """Flip one byte near the end of a file (inside the weights)."""
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
