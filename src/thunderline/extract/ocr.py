"""OCR for images and PDF pages without a text layer: RapidOCR (PP-OCRv4 ONNX models).

``rapidocr-onnxruntime`` 1.4.4 ships its detection, direction and recognition models as ONNX
files inside the wheel (nothing is downloaded) and runs them on ONNX Runtime, already a
dependency. One engine is loaded per worker process, at the first image. Every line keeps its
recognition confidence; lines below :data:`LOW_CONFIDENCE` are counted and listed in the
result (``raw["ocr_low_confidence"]``) so that nobody mistakes them for read text.

The engine runs in the worker (``TL_EXTRACT_OCR=rapidocr``; ``off`` switches OCR off). While it
works a heartbeat thread reports progress, so only the total timeout of the ``ocr`` kind
stops a slow page; the address-space cap applies as to any parser. Tesseract is not wired in:
the Debian package is not installed on these machines (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thunderline.extract.base import library_version
from thunderline.extract.result import OcrInfo

#: Lines whose recognition confidence is below this are marked low-confidence.
LOW_CONFIDENCE = 0.8
#: Longest image side handed to the engine (larger images are scaled down first).
MAX_SIDE = 2400
#: Images smaller than this on both sides are not OCR'd (icons, thumbnails, 28x28 digits).
MIN_SIDE = 48
#: Seconds between heartbeat progress reports while the engine works.
HEARTBEAT_S = 1.0

_engine: Any = None


@dataclass(frozen=True)
class OcrLine:
    text: str
    confidence: float
    top: float
    left: float


def _rapidocr() -> Any:
    global _engine
    if _engine is None:
        from rapidocr_onnxruntime import RapidOCR

        _engine = RapidOCR()
    return _engine


def available() -> str | None:
    """Why OCR cannot run here (None: it can)."""
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"rapidocr-onnxruntime is not installed ({exc}); pip install rapidocr-onnxruntime"
    return None


def recognise(image: Any, progress: Callable[[], None]) -> list[OcrLine]:
    """The text lines of a PIL image in reading order (top to bottom, left to right)."""
    import numpy as np

    if min(image.size) < MIN_SIDE:
        return []
    rgb = image.convert("RGB")
    scale = MAX_SIDE / max(rgb.size)
    if scale < 1:
        rgb = rgb.resize((max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale))))
    array = np.asarray(rgb)[:, :, ::-1].copy()  # RGB -> BGR, as OpenCV expects
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_S):
            progress()

    ticker = threading.Thread(target=beat, daemon=True)
    ticker.start()
    try:
        engine = _rapidocr()  # loaded at the first image, under the heartbeat too
        found, _elapsed = engine(array)
    finally:
        done.set()
        ticker.join()
    lines: list[OcrLine] = []
    for box, text, score in found or []:
        xs = [float(p[0]) for p in box]
        ys = [float(p[1]) for p in box]
        lines.append(OcrLine(str(text), float(score), min(ys), min(xs)))
    height = max((ln.top for ln in lines), default=0.0)
    row = max(height / 200.0, 8.0)
    lines.sort(key=lambda ln: (round(ln.top / row), ln.left))
    return lines


def info(lines: list[OcrLine]) -> OcrInfo:
    """The confidence summary of the lines read."""
    mean = sum(ln.confidence for ln in lines) / len(lines) if lines else 0.0
    return OcrInfo(
        engine="rapidocr",
        version=library_version("rapidocr-onnxruntime"),
        mean_confidence=round(min(max(mean, 0.0), 1.0), 4),
        lines=len(lines),
        low_confidence_lines=sum(1 for ln in lines if ln.confidence < LOW_CONFIDENCE),
        threshold=LOW_CONFIDENCE,
    )


def merge(infos: list[OcrInfo]) -> OcrInfo | None:
    """One summary for several pages."""
    if not infos:
        return None
    lines = sum(i.lines for i in infos)
    mean = sum(i.mean_confidence * i.lines for i in infos) / lines if lines else 0.0
    return infos[0].model_copy(
        update={
            "mean_confidence": round(mean, 4),
            "lines": lines,
            "low_confidence_lines": sum(i.low_confidence_lines for i in infos),
        }
    )


def low_confidence_note(lines: list[OcrLine], page: int | None = None) -> list[str]:
    where = f"page {page + 1} " if page is not None else ""
    return [
        f"{where}line {n + 1} ({ln.confidence:.2f}): {ln.text[:80]}"
        for n, ln in enumerate(lines)
        if ln.confidence < LOW_CONFIDENCE
    ]


__all__ = ["LOW_CONFIDENCE", "OcrLine", "available", "info", "merge", "recognise"]
