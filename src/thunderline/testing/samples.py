"""Sample inputs for tests and benchmarks, made on this machine (nothing downloaded).

* :func:`text_corpus`: real ~1 KB English documents built from text on this machine: the
  licence texts in ``/usr/share/common-licenses``, the Debian package documents in
  ``/usr/share/doc`` (``copyright``, ``README*``, ``*.txt``), then the docstrings of the Python
  standard library. Texts are cut into chunks of about ``size`` bytes on paragraph, then
  sentence, then word boundaries; exact duplicates are dropped. The same machine gives the
  same corpus every run.
* :func:`image_bytes`: a deterministic test picture (PNG or JPEG) per seed.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _source_texts() -> Iterator[str]:
    licences = Path("/usr/share/common-licenses")
    if licences.is_dir():
        for path in sorted(licences.iterdir()):
            if path.is_file():
                yield path.read_text("utf-8", "replace")
    docs = Path("/usr/share/doc")
    if docs.is_dir():
        for package in sorted(docs.iterdir()):
            if not package.is_dir():
                continue
            for path in sorted(package.iterdir()):
                name = path.name
                if path.is_file() and (
                    name == "copyright"
                    or (name.startswith("README") and "." not in name[6:])
                    or name.endswith(".txt")
                ):
                    yield path.read_text("utf-8", "replace")
    yield from _stdlib_docstrings()


def _stdlib_docstrings() -> Iterator[str]:
    import importlib
    import warnings

    skip = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "distutils"}
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in skip:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:
            continue
        if module.__doc__:
            yield module.__doc__


def _chunks(text: str, size: int) -> Iterator[str]:
    text = text.replace("\r", "")
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        if len(para) <= size:
            pieces.append(para)
            continue
        for sentence in _SENTENCE_END.split(para):
            while len(sentence) > size:
                cut = sentence.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                pieces.append(sentence[:cut])
                sentence = sentence[cut:].lstrip()
            if sentence:
                pieces.append(sentence)
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > size:
            yield current
            current = piece
        else:
            current = f"{current}\n{piece}" if current else piece
        if len(current) >= size * 0.9:
            yield current
            current = ""
    if current:
        yield current


def text_corpus(n: int = 1000, size: int = 1024, per_source: int = 6) -> list[str]:
    """``n`` distinct real documents of ``size`` bytes (give or take 10%).

    A first pass takes at most ``per_source`` documents from each source text so the corpus
    is varied; a second pass fills up from all of them.
    """
    seen: set[str] = set()
    out: list[str] = []
    for cap in (per_source, None):
        for text in _source_texts():
            for taken, chunk in enumerate(_chunks(text, size)):
                if cap is not None and taken >= cap:
                    break
                if len(chunk.encode("utf-8")) < size * 0.9:
                    continue
                digest = hashlib.sha256(chunk.encode("utf-8")).hexdigest()
                if digest in seen:
                    continue
                seen.add(digest)
                out.append(chunk)
                if len(out) == n:
                    return out
    raise RuntimeError(f"only {len(out)} documents of ~{size} bytes found on this machine")


def image_bytes(seed: int = 0, size: tuple[int, int] = (320, 240), fmt: str = "PNG") -> bytes:
    """A deterministic test picture: a colour gradient with a few rectangles."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 1, w)[None, :, None]
    y = np.linspace(0, 1, h)[:, None, None]
    base = rng.uniform(0, 1, 3)[None, None, :]
    arr = (255 * np.clip(0.5 * base + 0.3 * x + 0.2 * y, 0, 1)).astype(np.uint8)
    img = Image.fromarray(np.broadcast_to(arr, (h, w, 3)).copy(), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.rectangle(
            (x0, y0, x0 + int(rng.integers(10, 80)), y0 + int(rng.integers(10, 80))), fill=colour
        )
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()
