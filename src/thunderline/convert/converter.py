"""Keras 3 ``.keras`` -> ONNX: export, name the I/O like Keras, check it, summarise it.

Keras 3's own ``model.export(path, format="onnx", opset_version=...)`` does the export (with
the TensorFlow backend it drives tf2onnx's ``from_function``; ``tf2onnx.convert.from_keras``
fails on Keras 3 models, onnx/tensorflow-onnx#2448). The exporter names outputs after
TensorFlow tensors (``Identity:0``) and the batch dimension ``unk__N``; both are renamed here to
the Keras output names and ``batch``, then every input and output is checked against the Keras
model (names, ranks, fixed dimensions, dynamic batch) before the file is kept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from thunderline.convert.errors import ExportError, IOMismatchError
from thunderline.convert.keras_file import load_keras_model

_log = logging.getLogger("thunderline.convert")
DEFAULT_OPSET = 17
KERAS_FILE = Path("keras") / "model.keras"
ONNX_FILE = Path("onnx") / "model.onnx"


@dataclass(frozen=True)
class TensorInfo:
    """One input or output: name, shape (``None`` = dynamic) and dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass(frozen=True)
class ConversionSummary:
    """What :func:`convert_keras` wrote."""

    name: str
    source: str
    keras_path: str
    onnx_path: str
    opset: int
    nodes: int
    parameters: int
    size_bytes: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return asdict(self)

    def line(self) -> str:
        """A one-line summary (logged, and printed by the CLI)."""
        io = ", ".join(f"{t.name}{list(t.shape)}:{t.dtype}" for t in self.inputs)
        out = ", ".join(f"{t.name}{list(t.shape)}:{t.dtype}" for t in self.outputs)
        return (
            f"converted {self.source} -> {self.onnx_path}: {self.nodes} nodes, "
            f"{self.parameters} parameters, {self.size_bytes} bytes, opset {self.opset}; "
            f"inputs {io}; outputs {out} ({self.seconds:.1f}s)"
        )


def keras_io(model: Any) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The Keras model's inputs and outputs as :class:`TensorInfo`."""
    names = list(getattr(model, "output_names", None) or [])

    def info(tensor: Any, name: str) -> TensorInfo:
        shape = tuple(None if d is None else int(d) for d in tensor.shape)
        return TensorInfo(name, shape, str(np.dtype(tensor.dtype)))

    inputs = [info(t, t.name) for t in model.inputs]
    outputs = [info(t, names[i] if i < len(names) else t.name) for i, t in enumerate(model.outputs)]
    return inputs, outputs


def _onnx_info(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor = value.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
    return TensorInfo(value.name, shape, str(np.dtype(dtype)))


def onnx_io(proto: onnx.ModelProto) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The ONNX graph's real inputs (initializers excluded) and outputs."""
    inits = {i.name for i in proto.graph.initializer}
    inputs = [_onnx_info(v) for v in proto.graph.input if v.name not in inits]
    return inputs, [_onnx_info(v) for v in proto.graph.output]


def _rename_io(proto: onnx.ModelProto, output_names: list[str]) -> None:
    """Outputs named like Keras' outputs; symbolic batch dimensions named ``batch``."""
    graph = proto.graph
    for value, new in zip(graph.output, output_names, strict=False):
        old = value.name
        if old == new:
            continue
        for node in graph.node:
            node.output[:] = [new if o == old else o for o in node.output]
            node.input[:] = [new if i == old else i for i in node.input]
        value.name = new
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"


def check_io(model: Any, proto: onnx.ModelProto, source: Path) -> None:
    """Refuse an export whose inputs/outputs differ from the Keras model's.

    Raises:
        IOMismatchError: names, count, rank, a fixed dimension or the dynamic batch differ.
    """
    for kind, want, got in zip(("input", "output"), keras_io(model), onnx_io(proto), strict=True):
        if [t.name for t in want] != [t.name for t in got]:
            raise IOMismatchError(
                f"{source}: ONNX {kind} names {[t.name for t in got]} differ from Keras "
                f"{[t.name for t in want]}",
                details={"file": str(source)},
            )
        for w, g in zip(want, got, strict=True):
            if len(w.shape) != len(g.shape) or any(
                a is not None and a != b for a, b in zip(w.shape, g.shape, strict=True)
            ):
                raise IOMismatchError(
                    f"{source}: ONNX {kind} {g.name} has shape {list(g.shape)}, Keras has "
                    f"{list(w.shape)}",
                    details={"file": str(source)},
                )
            if w.shape and w.shape[0] is None and g.shape[0] is not None:
                raise IOMismatchError(
                    f"{source}: ONNX {kind} {g.name} lost the dynamic batch dimension",
                    details={"file": str(source)},
                )


def dummy_inputs(model: Any) -> list[np.ndarray[Any, Any]]:
    """Zeros of batch 1 for every Keras input (to build / trace the model)."""
    inputs, _ = keras_io(model)
    return [np.zeros([d or 1 for d in t.shape], dtype=t.dtype) for t in inputs]


def convert_keras(
    source: Path,
    out_dir: Path,
    *,
    opset: int = DEFAULT_OPSET,
    name: str | None = None,
    labels: list[str] | None = None,
) -> ConversionSummary:
    """Convert ``source`` (.keras) into ``out_dir/onnx/model.onnx`` (and copy it to keras/).

    Raises:
        NotAKerasModelError, UnsupportedLayerError, ConvertUnavailableError (from loading),
        ExportError, IOMismatchError.
    """
    started = time.perf_counter()
    source = Path(source)
    model = load_keras_model(source)
    name = name or out_dir.resolve().name
    keras_path = out_dir / KERAS_FILE
    onnx_path = out_dir / ONNX_FILE
    keras_path.parent.mkdir(parents=True, exist_ok=True)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    if not keras_path.exists() or not keras_path.samefile(source):
        shutil.copyfile(source, keras_path)
    model(*dummy_inputs(model))  # the exporter wants a model that has been called
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=onnx_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            model.export(str(tmp), format="onnx", opset_version=opset, verbose=False)
            proto = onnx.load_model(str(tmp))
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise ExportError(
                f"{source}: ONNX export failed: {type(exc).__name__}: {first}",
                details={"file": str(source)},
            ) from exc
        _, outputs = keras_io(model)
        _rename_io(proto, [t.name for t in outputs])
        meta = {"name": name, "converter": "thunderline models convert", "source": source.name}
        if labels:
            meta["labels"] = json.dumps(labels)
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        check_io(model, proto, source)
        onnx.checker.check_model(proto)
        onnx.save_model(proto, str(tmp))
        tmp.chmod(0o644)
        tmp.replace(onnx_path)
    finally:
        tmp.unlink(missing_ok=True)
    inputs, outputs = onnx_io(proto)
    summary = ConversionSummary(
        name=name,
        source=str(source),
        keras_path=str(keras_path),
        onnx_path=str(onnx_path),
        opset=next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0),
        nodes=len(proto.graph.node),
        parameters=int(model.count_params()),
        size_bytes=onnx_path.stat().st_size,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        seconds=round(time.perf_counter() - started, 3),
    )
    _log.info("%s", summary.line())
    return summary
