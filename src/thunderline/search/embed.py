"""Sentence embeddings for "similar documents": all-MiniLM-L6-v2 as ONNX, no PyTorch at run time.

* :class:`Tokenizer` reads the model's ``tokenizer.json`` with the ``tokenizers`` package
  (WordPiece, ``[CLS] ... [SEP]``, at most 256 pieces -- the reference's ``max_seq_length``).
* :class:`Embedder` loads ``models/text_embedder/onnx/model.onnx`` through the model
  registry's gate (inside the trusted model folder, checksums and signature checked, as every
  model) and runs it through our :class:`~thunderline.ml.batcher.DynamicBatcher`: each text is
  one request, padded to the longest text of its chunk so the batcher joins them. The graph
  pools and normalises, so an embedding is a unit float32 vector of 384 values.

``models/export_embedder.py`` writes the folder (``make models``) and validates this very path
against ``SentenceTransformer.encode`` (cosine >= 0.999).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from thunderline.errors import ConfigError

if TYPE_CHECKING:
    from thunderline.config import Settings
    from thunderline.ml.batcher import DynamicBatcher

MODEL_NAME: Final = "text_embedder"
MODEL_FILE: Final = "onnx/model.onnx"
TOKENIZER_FILE: Final = "tokenizer.json"
MAX_PIECES: Final = 256
DIM: Final = 384
#: Characters of a voxel's text that are embedded (256 word pieces rarely need more).
EMBED_CHARS: Final = 4000
_CHUNK: Final = 16


class Tokenizer:
    """all-MiniLM-L6-v2's WordPiece tokenizer from ``tokenizer.json`` (no PyTorch)."""

    def __init__(self, path: Path, max_pieces: int = MAX_PIECES) -> None:
        """Read ``path`` (a Hugging Face ``tokenizer.json``).

        Raises:
            ConfigError: the ``tokenizers`` package is missing or the file is unreadable.
        """
        try:
            from tokenizers import Tokenizer as HfTokenizer
        except ImportError as exc:  # pragma: no cover - a dependency of the project
            raise ConfigError("similar documents need the 'tokenizers' package") from exc
        try:
            self._tok = HfTokenizer.from_file(str(path))
        except Exception as exc:
            raise ConfigError(f"cannot read the tokenizer {path}: {exc}") from exc
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_pieces)

    def encode(self, texts: Sequence[str]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``input_ids`` and ``attention_mask`` (int64 ``[n, longest]``, zero padded)."""
        encodings = self._tok.encode_batch(list(texts))
        longest = max((len(e.ids) for e in encodings), default=1)
        ids = np.zeros((len(encodings), longest), dtype=np.int64)
        mask = np.zeros((len(encodings), longest), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        return ids, mask


def model_folder(settings: Settings) -> Path:
    """Where the embedder's folder lies (``TL_ONNX_MODEL_DIR``/text_embedder)."""
    return Path(settings.onnx.model_dir) / MODEL_NAME


def _listed_sha256(folder: Path) -> str | None:
    try:
        lines = (folder / "checksums.txt").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        digest, _, name = line.partition("  ")
        if name.strip() == MODEL_FILE:
            return digest.strip()
    return None


class Embedder:
    """Texts -> unit vectors, through the dynamic batcher. Close it (or use ``with``)."""

    def __init__(self, model: Any, tokenizer: Tokenizer, *, max_batch: int = _CHUNK) -> None:
        """Wrap a loaded :class:`~thunderline.ml.model.OnnxModel` and its tokenizer."""
        from thunderline.ml.batcher import DynamicBatcher

        self.model = model
        self.tokenizer = tokenizer
        self.batcher: DynamicBatcher = DynamicBatcher(
            model, max_batch_size=max_batch, max_queue_delay_s=0.001, name=MODEL_NAME
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        """Load the embedder from the model folder through the registry's trust gate.

        Raises:
            ConfigError: the folder or its tokenizer is missing.
            UntrustedModelError, ChecksumMismatch, ModelLoadError: the model is refused.
        """
        from thunderline.ml.registry import ModelRegistry

        folder = model_folder(settings)
        if not (folder / MODEL_FILE).is_file():
            raise ConfigError(
                f"no sentence-embedding model at {folder / MODEL_FILE}: run "
                "`make models` (models/export_embedder.py)"
            )
        registry = ModelRegistry.from_settings(settings)
        model = registry.load_path(
            folder / MODEL_FILE, sha256=_listed_sha256(folder), name=MODEL_NAME
        )
        return cls(model, Tokenizer(folder / TOKENIZER_FILE))

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Unit embeddings ``[len(texts), 384]`` (an empty text embeds ``[CLS] [SEP]``)."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(texts), _CHUNK):
            chunk = [t[:EMBED_CHARS] for t in texts[start : start + _CHUNK]]
            ids, mask = self.tokenizer.encode(chunk)
            futures = [
                self.batcher.submit(
                    {"input_ids": ids[i : i + 1], "attention_mask": mask[i : i + 1]}
                )
                for i in range(len(chunk))
            ]
            for i, future in enumerate(futures):
                out[start + i] = future.result()["embedding"][0]
        return out

    def close(self) -> None:
        """Stop the batcher thread and release the session."""
        self.batcher.close()
        self.model.close()

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
