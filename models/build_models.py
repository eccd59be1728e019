"""Build the test / acceptance ONNX models deterministically and write ``models/registry.toml``.

Until the supply-chain work ships trained models, these are the models Thunderline runs:

``image_classifier``
    A MobileNetV2 (width 1.0) image classifier, 224x224 RGB, **NCHW** input ``pixel_values``
    ``[batch, 3, 224, 224]`` float32 (ImageNet mean/std normalised), output ``probabilities``
    ``[batch, 10]`` (softmax). 17 inverted-residual blocks with depthwise convolutions, batch
    norm folded into the convolutions, ReLU6 as ``Clip(0, 6)``: about 300 M multiply-adds
    (~600 MFLOPs) per image. The batch dimension is symbolic (dynamic batching).
``image_classifier_fixed``
    The same architecture at width 0.5 with a fixed batch dimension of 1 (the batcher runs its
    requests one by one).
``text_classifier``
    A small bag-of-bytes text classifier: ``input_ids`` int64 ``[batch, 256]`` (UTF-8 bytes,
    zero padded; tokenisation ``utf8_bytes``), embedding, mean pooling, dense, softmax over 4
    labels.

Weights come from a seeded generator (He initialisation). Batch-norm statistics are calibrated
on a fixed batch of synthetic images (computed in NumPy, rounded to float16 precision so the
result does not depend on the BLAS build) so activations stay in ReLU6's working range and the
outputs are not uniform. The same inputs give byte-identical files: run it twice and compare
the SHA-256 sums. Run it from the repository root::

    .venv/bin/python models/build_models.py            # writes models/<name>/onnx/*.onnx
    .venv/bin/python models/build_models.py --check    # rebuild in memory, compare with disk
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
OPSET = 17
PRODUCER = "thunderline-build-models"
PRODUCER_VERSION = "1.0.0"
IMAGE_LABELS = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
TEXT_LABELS = ["prose", "code", "data", "other"]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
TEXT_SEQ_LEN = 256

# (expansion t, output channels c, repeats n, first stride s): MobileNetV2 table 2
_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
_BLOCKS += [(6, 160, 3, 2), (6, 320, 1, 1)]

F32 = NDArray[np.float32]


def _make_divisible(value: float, divisor: int = 8) -> int:
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def _round16(x: NDArray[Any]) -> F32:
    """Round to float16 precision (BLAS-independent calibration results), stored as float32."""
    return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float32)


# ---- NumPy reference forward pass (NHWC) used for calibration and as a check --------------
def _conv_full(x: F32, w: F32, stride: int) -> F32:
    """3x3 convolution, pad 1, NHWC input, OIHW weights."""
    _, h, wd, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho, wo = (h + 2 - 3) // stride + 1, (wd + 2 - 3) // stride + 1
    taps = [
        xp[:, i : i + (ho - 1) * stride + 1 : stride, j : j + (wo - 1) * stride + 1 : stride, :]
        for i in range(3)
        for j in range(3)
    ]
    patches = np.concatenate(taps, axis=-1)  # [n, ho, wo, 9*c], order (kh, kw, c)
    wmat = w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
    out: F32 = patches @ wmat.T
    return out


def _conv_depthwise(x: F32, w: F32, stride: int) -> F32:
    n, h, wd, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho, wo = (h + 2 - 3) // stride + 1, (wd + 2 - 3) // stride + 1
    out = np.zeros((n, ho, wo, c), dtype=np.float32)
    for i in range(3):
        for j in range(3):
            tap = xp[
                :, i : i + (ho - 1) * stride + 1 : stride, j : j + (wo - 1) * stride + 1 : stride, :
            ]
            out += tap * w[:, 0, i, j]
    return out


def _conv_pointwise(x: F32, w: F32) -> F32:
    out: F32 = x @ w[:, :, 0, 0].T
    return out


@dataclass
class _GraphBuilder:
    """Accumulates ONNX nodes and initializers while running the NumPy forward pass."""

    rng: np.random.Generator
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    counter: int = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def const(self, name: str, value: NDArray[Any]) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def conv_bn(
        self,
        x: F32,
        x_name: str,
        cout: int,
        *,
        kind: str,
        stride: int = 1,
        relu6: bool = True,
    ) -> tuple[F32, str]:
        """Conv + calibrated batch norm (folded) + optional ReLU6, in NumPy and in the graph."""
        cin = x.shape[-1]
        if kind == "depthwise":
            fan_in = 9
            w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (cin, 1, 3, 3)).astype(np.float32)
            y = _conv_depthwise(x, w, stride)
            cout = cin
        elif kind == "full":
            fan_in = 9 * cin
            w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin, 3, 3)).astype(np.float32)
            y = _conv_full(x, w, stride)
        else:
            w = self.rng.normal(0, np.sqrt(2.0 / cin), (cout, cin, 1, 1)).astype(np.float32)
            y = _conv_pointwise(x, w)
        # batch-norm statistics from the calibration batch, folded into the convolution
        mean = y.mean(axis=(0, 1, 2), dtype=np.float64)
        std = y.std(axis=(0, 1, 2), dtype=np.float64) + 1e-3
        if relu6:
            gamma = self.rng.uniform(0.8, 1.6, cout)
            beta = self.rng.uniform(0.2, 0.8, cout)
        else:
            gamma = self.rng.uniform(0.4, 0.9, cout)
            beta = self.rng.uniform(-0.1, 0.1, cout)
        scale = _round16(gamma / std)
        shift = _round16(beta - mean * gamma / std)
        w_folded = (w * scale[:, None, None, None]).astype(np.float32)
        y = (y * scale + shift).astype(np.float32)

        node_name = self.name(kind)
        w_name = self.const(f"{node_name}.weight", w_folded)
        b_name = self.const(f"{node_name}.bias", shift)
        attrs: dict[str, Any] = {"kernel_shape": [3, 3] if kind != "pointwise" else [1, 1]}
        attrs["strides"] = [stride, stride]
        attrs["pads"] = [1, 1, 1, 1] if kind != "pointwise" else [0, 0, 0, 0]
        if kind == "depthwise":
            attrs["group"] = cin
        out = f"{node_name}.out"
        self.nodes.append(
            helper.make_node("Conv", [x_name, w_name, b_name], [out], name=node_name, **attrs)
        )
        if relu6:
            y = np.clip(y, 0.0, 6.0)
            clipped = f"{node_name}.relu6"
            self.nodes.append(
                helper.make_node(
                    "Clip", [out, "relu6.min", "relu6.max"], [clipped], name=f"{node_name}_relu6"
                )
            )
            out = clipped
        return y, out


def calibration_images(n: int = 6, size: int = 224, seed: int = 7) -> F32:
    """Synthetic smooth "images" (NHWC, normalised) used to calibrate batch-norm statistics."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, (n, size // 16, size // 16, 3))
    img = np.repeat(np.repeat(coarse, 16, axis=1), 16, axis=2)
    img = 0.7 * img + 0.3 * rng.uniform(0.0, 1.0, img.shape)
    normed = (img - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return normed.astype(np.float32)


def build_mobilenet_v2(
    *,
    width: float = 1.0,
    batch: int | str = "batch",
    seed: int = 20240601,
    name: str = "image_classifier",
    version: str = "1.0.0",
) -> tuple[onnx.ModelProto, F32]:
    """A MobileNetV2 classifier over 10 labels and the NumPy reference of its calibration run.

    Returns the model and the probabilities the NumPy reference computed for
    :func:`calibration_images` (used to check ONNX Runtime agrees).
    """
    rng = np.random.default_rng(seed)
    g = _GraphBuilder(rng)
    g.const("relu6.min", np.array(0.0, dtype=np.float32))
    g.const("relu6.max", np.array(6.0, dtype=np.float32))
    x_nhwc = calibration_images()
    # the graph takes NCHW; the NumPy reference runs NHWC
    y, cur = g.conv_bn(x_nhwc, "pixel_values", _make_divisible(32 * width), kind="full", stride=2)
    cin = y.shape[-1]
    for t, c, n, s in _BLOCKS:
        cout = _make_divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            block_in, block_in_name = y, cur
            h, h_name = y, cur
            if t != 1:
                h, h_name = g.conv_bn(h, h_name, cin * t, kind="pointwise")
            h, h_name = g.conv_bn(h, h_name, 0, kind="depthwise", stride=stride)
            h, h_name = g.conv_bn(h, h_name, cout, kind="pointwise", relu6=False)
            if stride == 1 and cin == cout:
                add = g.name("add")
                g.nodes.append(helper.make_node("Add", [block_in_name, h_name], [add], name=add))
                h, h_name = (block_in + h).astype(np.float32), add
            y, cur, cin = h, h_name, cout
    last = _make_divisible(1280 * max(1.0, width))
    y, cur = g.conv_bn(y, cur, last, kind="pointwise")
    pooled = y.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
    g.nodes.append(helper.make_node("GlobalAveragePool", [cur], ["pooled"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], name="flatten", axis=1))

    w = rng.normal(0, 1.0, (len(IMAGE_LABELS), last))
    logits = pooled.astype(np.float64) @ w.T
    # scale so logits have a spread of ~3.5 and centre each class so no label dominates
    w = w * (3.5 / (logits.std() + 1e-6))
    logits = pooled.astype(np.float64) @ w.T
    bias = -logits.mean(axis=0) + rng.normal(0, 0.3, len(IMAGE_LABELS))
    w32, b32 = _round16(w), _round16(bias)
    g.const("classifier.weight", w32)
    g.const("classifier.bias", b32)
    g.nodes.append(
        helper.make_node(
            "Gemm",
            ["features", "classifier.weight", "classifier.bias"],
            ["logits"],
            name="classifier",
            transB=1,
        )
    )
    g.nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax"))
    ref_logits = pooled @ w32.T + b32
    ref = np.exp(ref_logits - ref_logits.max(axis=1, keepdims=True))
    ref = (ref / ref.sum(axis=1, keepdims=True)).astype(np.float32)

    graph = helper.make_graph(
        g.nodes,
        f"{name}_mobilenet_v2",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [batch, 3, 224, 224])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, 10])],
        initializer=g.inits,
    )
    meta = {
        "name": name,
        "version": version,
        "labels": json.dumps(IMAGE_LABELS),
        "layout": "NCHW",
        "architecture": f"mobilenet_v2 width={width}",
    }
    return _finish(graph, meta), ref


def build_text_classifier(
    *, seed: int = 20240602, name: str = "text_classifier", version: str = "1.0.0"
) -> onnx.ModelProto:
    """Bag-of-bytes classifier: input_ids int64 [batch, 256] -> probabilities [batch, 4]."""
    rng = np.random.default_rng(seed)
    dim = 32
    emb = rng.normal(0, 1.0, (256, dim)).astype(np.float32)
    emb[0] = 0.0  # padding byte contributes nothing
    w = rng.normal(0, 1.0 / np.sqrt(dim) * 4, (len(TEXT_LABELS), dim)).astype(np.float32)
    b = rng.normal(0, 0.1, len(TEXT_LABELS)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["embedded"], axis=0),
        helper.make_node("ReduceMean", ["embedded"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("Gemm", ["pooled", "dense.weight", "dense.bias"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"]),
    ]
    inits = [
        numpy_helper.from_array(emb, "embedding"),
        numpy_helper.from_array(w, "dense.weight"),
        numpy_helper.from_array(b, "dense.bias"),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", TEXT_SEQ_LEN])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 4])],
        initializer=inits,
    )
    meta = {"name": name, "version": version, "labels": json.dumps(TEXT_LABELS)}
    return _finish(graph, meta)


def _finish(graph: onnx.GraphProto, meta: dict[str, str]) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
    )
    model.ir_version = 8
    model.model_version = 1
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    return model


# ---- registry ------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def registry_text(entries: list[dict[str, Any]]) -> str:
    lines = [
        "# Thunderline model registry: written by models/build_models.py (do not edit by hand;",
        "# rebuild, or update sha256 with `thunderline models checksum PATH`).",
        "# Paths are relative to this folder (TL_ONNX_MODEL_DIR).",
        "",
    ]
    for entry in entries:
        lines.append("[[models]]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in entry.items())
        lines.append("")
    return "\n".join(lines)


def build_all() -> tuple[dict[str, bytes], str]:
    """Every model's bytes (by relative path) and the registry text. Deterministic."""
    import onnxruntime as ort

    files: dict[str, bytes] = {}
    entries: list[dict[str, Any]] = []
    specs = [
        ("image_classifier", 1.0, "batch", True, "image_classifier/onnx/image_classifier.onnx"),
        (
            "image_classifier_fixed",
            0.5,
            1,
            False,
            "image_classifier_fixed/onnx/image_classifier_fixed.onnx",
        ),
    ]
    for name, width, batch, preload, rel in specs:
        model, ref = build_mobilenet_v2(width=width, batch=batch, name=name)
        data = model.SerializeToString()
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        x = calibration_images().transpose(0, 3, 1, 2).copy()
        got = np.concatenate([sess.run(None, {"pixel_values": x[i : i + 1]})[0] for i in range(6)])
        diff = float(np.abs(got - ref).max())
        if diff > 1e-3:
            raise SystemExit(f"{name}: ONNX Runtime disagrees with the NumPy reference ({diff})")
        files[rel] = data
        entries.append(
            {
                "name": name,
                "path": rel,
                "version": "1.0.0",
                "kind": "image",
                "input_shape": [batch, 3, 224, 224],
                "layout": "NCHW",
                "mean": IMAGENET_MEAN,
                "std": IMAGENET_STD,
                "preload": preload,
                "sha256": hashlib.sha256(data).hexdigest(),
                "labels": IMAGE_LABELS,
                "description": f"MobileNetV2 width {width}, 224x224 RGB, seeded weights (test).",
            }
        )
    text = build_text_classifier().SerializeToString()
    files["text_classifier/onnx/text_classifier.onnx"] = text
    entries.append(
        {
            "name": "text_classifier",
            "path": "text_classifier/onnx/text_classifier.onnx",
            "version": "1.0.0",
            "kind": "text",
            "input_shape": ["batch", TEXT_SEQ_LEN],
            "tokenizer": "utf8_bytes",
            "preload": False,
            "sha256": hashlib.sha256(text).hexdigest(),
            "labels": TEXT_LABELS,
            "description": "Bag-of-bytes text classifier, seeded weights (test).",
        }
    )
    return files, registry_text(entries)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="Model folder (default: here).")
    parser.add_argument("--check", action="store_true", help="Compare a rebuild with the disk.")
    args = parser.parse_args(argv)
    files, registry = build_all()
    out: Path = args.out
    if args.check:
        bad = [rel for rel, data in files.items() if _read(out / rel) != data]
        if _read(out / "registry.toml") != registry.encode():
            bad.append("registry.toml")
        for rel in bad:
            print(f"differs: {rel}")
        print("ok: rebuild is byte-identical" if not bad else "rebuild differs")
        return 1 if bad else 0
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
        print(f"{rel}: {len(data)} bytes sha256={hashlib.sha256(data).hexdigest()}")
    (out / "registry.toml").write_text(registry)
    print(f"registry.toml: {len(files)} models")
    return 0


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


if __name__ == "__main__":
    sys.exit(main())
