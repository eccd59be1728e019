"""The sentence embedder at run time: the committed ONNX model, through the registry's gate and
the dynamic batcher, tokenized without PyTorch -- against the reference embeddings that
``models/export_embedder.py`` recorded from sentence-transformers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from thunderline.config import load_settings
from thunderline.errors import ChecksumMismatch
from thunderline.search.embed import DIM, MAX_PIECES, Embedder, Tokenizer

REPO = Path(__file__).resolve().parents[3]
FOLDER = REPO / "models" / "text_embedder"


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedder]:
    settings = load_settings(home=tmp_path_factory.mktemp("embed"), onnx_model_dir=REPO / "models")
    with Embedder.from_settings(settings) as loaded:
        yield loaded


def test_matches_the_reference_implementation(embedder: Embedder) -> None:
    samples = json.loads((FOLDER / "sample_io.json").read_text())["samples"]
    got = embedder.embed([s["text"] for s in samples])
    want = np.array([s["embedding"] for s in samples], dtype=np.float32)
    assert got.shape == (len(samples), DIM) and got.dtype == np.float32
    cosines = (got * want).sum(axis=1) / np.linalg.norm(want, axis=1)
    assert cosines.min() >= 0.999, cosines
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # unit: cosine = dot


def test_meaning_not_words(embedder: Embedder) -> None:
    a, b, c = embedder.embed(
        [
            "The cat sat on the mat.",
            "A kitten was sitting on the rug.",
            "Quarterly revenue rose by four percent.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.3


def test_batched_equals_alone(embedder: Embedder) -> None:
    texts = ["short", "a somewhat longer sentence about Python and its history", ""]
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-5)  # padding never changes a vector


def test_tokenizer_truncates_and_masks() -> None:
    tok = Tokenizer(FOLDER / "tokenizer.json")
    ids, mask = tok.encode(["word " * 1000, "", "hello world"])
    assert ids.shape == mask.shape == (3, MAX_PIECES)
    assert ids.dtype == mask.dtype == np.int64
    assert mask.sum(axis=1).tolist() == [MAX_PIECES, 2, 4]  # [CLS] ... [SEP]
    assert ids[1, 0] == 101 and ids[1, 1] == 102 and ids[1, 2:].sum() == 0


def test_a_changed_folder_is_refused(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(FOLDER, models / "text_embedder")
    (models / "text_embedder" / "tokenizer.json").write_text("{}")
    settings = load_settings(home=tmp_path / "home", onnx_model_dir=models)
    with pytest.raises(ChecksumMismatch):
        Embedder.from_settings(settings)
