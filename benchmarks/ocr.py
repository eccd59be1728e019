"""OCR benchmark: character error rate and pages/s of RapidOCR, raw engine against ours.

Pages are rendered here with Pillow's own scalable font (no font file of the machine), four
lines of English prose each, then degraded: Gaussian blur, noise, a 2-degree skew, JPEG at
quality 15, and small type. For every page the raw engine (``RapidOCR()(array)``) and ours
(:func:`thunderline.extract.ocr.recognise`: scaling, heartbeat thread, reading order) run
alternately on the same image.

CER = Levenshtein distance / reference length, on text with runs of white space made one
space (``cer``) and with white space removed (``cer_nospace``: PP-OCR sometimes drops the
space between words, which a search index or spaCy sees, so both are given). ``ratio`` =
our pages/s / raw pages/s (goal >= 0.9). The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from importlib.metadata import version
from typing import Any

from thunderline.extract import ocr

LINES = [
    "Marie Curie was born in Warsaw in 1867 and moved to Paris.",
    "She received the Nobel Prize in Physics in 1903 with Pierre.",
    "Invoice 2024-117: three reams of paper, total 42.50 EUR.",
    "The meeting is on Tuesday at 10:30 in room B-204, Geneva.",
]


def _page(size: int) -> Any:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    image = Image.new("RGB", (int(size * 36), int(size * 2.2 * len(LINES) + 60)), "white")
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(LINES):
        draw.text((30, 30 + int(n * size * 2.2)), line, fill="black", font=font)
    return image


def _degrade(image: Any, how: str) -> Any:
    import io

    from PIL import Image, ImageFilter

    if how == "blur":
        return image.filter(ImageFilter.GaussianBlur(1.2))
    if how == "noise":
        rng = random.Random(7)
        noisy = image.copy()
        pixels = noisy.load()
        for _ in range(noisy.width * noisy.height // 12):
            x, y = rng.randrange(noisy.width), rng.randrange(noisy.height)
            value = rng.randrange(256)
            pixels[x, y] = (value, value, value)
        return noisy
    if how == "skew":
        return image.rotate(2.0, expand=True, fillcolor="white")
    if how == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=15)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _cer(reference: str, hypothesis: str) -> tuple[float, float]:
    ref, hyp = " ".join(reference.split()), " ".join(hypothesis.split())
    spaced = _distance(ref, hyp) / max(len(ref), 1)
    ref_n, hyp_n = "".join(ref.split()), "".join(hyp.split())
    return spaced, _distance(ref_n, hyp_n) / max(len(ref_n), 1)


def main() -> None:
    import numpy as np
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()
    reference = "\n".join(LINES)
    pages = {
        "clean_32px": _page(32),
        "clean_22px": _page(22),
        "blur": _degrade(_page(28), "blur"),
        "noise": _degrade(_page(28), "noise"),
        "skew": _degrade(_page(28), "skew"),
        "jpeg_q15": _degrade(_page(28), "jpeg"),
        "small_16px": _page(16),
    }
    ocr.recognise(pages["clean_32px"], lambda: None)  # load our engine outside the timing
    engine(np.asarray(pages["clean_32px"])[:, :, ::-1].copy())
    per_page: dict[str, Any] = {}
    raw_total = ours_total = 0.0
    for name, image in pages.items():
        array = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()
        t0 = time.perf_counter()
        raw_found, _ = engine(array)
        raw_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        lines = ocr.recognise(image, lambda: None)
        ours_s = time.perf_counter() - t0
        raw_total += raw_s
        ours_total += ours_s
        raw_text = "\n".join(str(r[1]) for r in raw_found or [])
        ours_text = "\n".join(line.text for line in lines)
        cer, cer_nospace = _cer(reference, ours_text)
        raw_cer, _ = _cer(reference, raw_text)
        per_page[name] = {
            "cer": round(cer, 4),
            "cer_nospace": round(cer_nospace, 4),
            "raw_cer": round(raw_cer, 4),
            "mean_confidence": ocr.info(lines).mean_confidence,
            "low_confidence_lines": ocr.info(lines).low_confidence_lines,
            "raw_s": round(raw_s, 3),
            "ours_s": round(ours_s, 3),
        }
    clean = [v for k, v in per_page.items() if k.startswith("clean")]
    degraded = [v for k, v in per_page.items() if not k.startswith("clean")]
    result = {
        "name": "ocr",
        "baseline": {
            "what": "RapidOCR()(array) on the same pages",
            "pages_per_s": round(len(pages) / raw_total, 3),
        },
        "ours": {
            "what": "thunderline.extract.ocr.recognise",
            "pages_per_s": round(len(pages) / ours_total, 3),
            "cer_clean": round(sum(v["cer"] for v in clean) / len(clean), 4),
            "cer_clean_nospace": round(sum(v["cer_nospace"] for v in clean) / len(clean), 4),
            "cer_degraded": round(sum(v["cer"] for v in degraded) / len(degraded), 4),
            "cer_degraded_nospace": round(
                sum(v["cer_nospace"] for v in degraded) / len(degraded), 4
            ),
            "per_page": per_page,
        },
        "ratio": round(raw_total / ours_total, 3),
        "goal": 0.9,
        "unit": "our pages/s / raw engine pages/s",
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "rapidocr-onnxruntime": version("rapidocr-onnxruntime"),
            "onnxruntime": version("onnxruntime"),
            "load": [round(x, 1) for x in os.getloadavg()],
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
