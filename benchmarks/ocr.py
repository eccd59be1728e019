"""OCR benchmark: character error rate and pages/s of RapidOCR and Tesseract, raw against ours.

Pages are rendered here (Pillow's own scalable font, and the DejaVu Sans, Serif, Mono and
Sans Condensed Oblique fonts when the machine has them), four lines of English prose, names,
dates and figures each, then some are degraded: Gaussian blur, salt-and-pepper noise, a
2-degree skew, JPEG at quality 15, small type (14 px) and blur followed by JPEG. For every page
each engine runs raw and through ours, alternately (the order flips from page to page):

* RapidOCR raw: ``RapidOCR()(array)`` (the wheel's defaults); ours:
  :func:`thunderline.extract.ocr.recognise` with ``engine="rapidocr"`` (spaces decoded back,
  no direction classifier unless the page reads badly, lines rebuilt from the boxes).
* Tesseract raw: ``tesseract PAGE.png stdout -l eng`` (plain text, the CLI's defaults:
  ``--psm 3``, the file's own resolution); ours: ``recognise(engine="tesseract")`` on the same
  file opened with Pillow, as the image extractor does (the page through an uncompressed
  temporary TIFF with the file's resolution as ``--dpi``, plain text and TSV with word boxes
  and confidences in one run, heartbeat). Skipped, and said so, when the binary is absent.

Ours opens and decodes the file inside its timing, as the CLI does; RapidOCR raw is handed the
decoded array (a few ms against seconds of recognition).

CER = Levenshtein distance / reference length, with the same normalisation for every engine
and for the reference: lines joined by a newline, then every run of white space made one space
(``cer``: a missing or extra space between words counts as one error); ``cer_nospace`` drops
white space altogether (for comparison only). The goal of issue 18 is ``cer`` <= 0.02 on the
clean pages and <= 0.08 on the degraded ones. ``ratio`` = our pages/s / the raw engine's
pages/s on the same pages in the same run (goal >= 0.9). The last line is one JSON object.

**Real photos of text** (``--photos``): the photographs listed in
``benchmarks/ocr_photos.json`` (a photographed book page from scikit-image, six street-sign
photos from Debian's ``opencv-doc``), read from the packages that ship them (not copied here:
their licences are unclear), against transcripts written by hand beside them. Each photo runs
raw and ours for both engines as above; CER is reported as for the pages and also caseless
(``cer_caseless``: a stylised sign's case is a matter of opinion). A photo whose package is not
installed is listed under ``missing``. Pass ``--photo-root DIR`` for a folder the packages were
unpacked into (``dpkg -x opencv-doc_*.deb DIR``; ``unzip scikit_image-*.whl -d DIR``).

``cpu_ratio`` is the same ratio in CPU seconds (this process and its children, user + system:
steadier than wall time on a shared machine). ``--repeat N`` runs each photo N times.

Usage: ``python benchmarks/ocr.py [--fonts N] [--engines rapidocr,tesseract] [--photos]
[--only-photos] [--photo-root DIR] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from thunderline.extract import ocr

TEXT = [
    "Marie Curie was born in Warsaw in 1867 and moved to Paris.",
    "She received the Nobel Prize in Physics in 1903 with Pierre.",
    "Invoice 2024-117: three reams of paper, total 42.50 EUR.",
    "The meeting is on Tuesday at 10:30 in room B-204, Geneva.",
    "Please call +41 22 555 0199 before Friday, 5 May 2025.",
    "Quick brown foxes jump over the lazy dog; 7 of 9 did.",
    "Order #88213 ships from Rotterdam on 14 March via DHL.",
    "Dr. Ada Lovelace wrote the first program for Babbage.",
]
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS: list[tuple[str, Path | None]] = [
    ("pillow", None),
    ("dejavu-sans", FONT_DIR / "DejaVuSans.ttf"),
    ("dejavu-serif", FONT_DIR / "DejaVuSerif.ttf"),
    ("dejavu-mono", FONT_DIR / "DejaVuSansMono.ttf"),
    ("dejavu-cond-oblique", FONT_DIR / "DejaVuSansCondensed-Oblique.ttf"),
]
#: (name, size in px, degradation); names starting with ``clean`` count as clean pages.
VARIANTS = [
    ("clean_32px", 32, ""),
    ("clean_22px", 22, ""),
    ("blur", 28, "blur"),
    ("noise", 28, "noise"),
    ("skew", 28, "skew"),
    ("jpeg_q15", 28, "jpeg"),
    ("small_14px", 14, ""),
    ("blur_jpeg", 24, "blur+jpeg"),
]


def _lines(n: int) -> list[str]:
    """Four lines of the text, a different set for every page."""
    return [TEXT[(n * 3 + k) % len(TEXT)] for k in range(4)]


def _page(font_path: Path | None, size: int, lines: list[str]) -> Any:
    from PIL import Image, ImageDraw, ImageFont

    if font_path is None:
        font: Any = ImageFont.load_default(size=size)
    else:
        font = ImageFont.truetype(str(font_path), size)
    width = int(max(font.getlength(line) for line in lines) + 60)
    image = Image.new("RGB", (width, int(size * 2.2 * len(lines) + 60)), "white")
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((30, 30 + int(n * size * 2.2)), line, fill="black", font=font)
    return image


def _degrade(image: Any, how: str) -> Any:
    from PIL import Image, ImageFilter

    for step in filter(None, how.split("+")):
        if step == "blur":
            image = image.filter(ImageFilter.GaussianBlur(1.2))
        elif step == "noise":
            rng = random.Random(7)
            image = image.copy()
            pixels = image.load()
            for _ in range(image.width * image.height // 12):
                x, y = rng.randrange(image.width), rng.randrange(image.height)
                value = rng.randrange(256)
                pixels[x, y] = (value, value, value)
        elif step == "skew":
            image = image.rotate(2.0, expand=True, fillcolor="white")
        elif step == "jpeg":
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=15)
            image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normalise(text: str) -> str:
    """The one normalisation for every engine and the reference.

    Runs of white space (newlines included) become one space; the ends are stripped.
    """
    return " ".join(text.split())


def cer(reference: str, hypothesis: str) -> tuple[float, float]:
    """(CER with spaces, CER without white space) of ``hypothesis`` against ``reference``."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    spaced = _distance(ref, hyp) / max(len(ref), 1)
    ref_n, hyp_n = ref.replace(" ", ""), hyp.replace(" ", "")
    return spaced, _distance(ref_n, hyp_n) / max(len(ref_n), 1)


def _tesseract_raw(path: Path) -> str:
    env = dict(os.environ)
    env.setdefault("OMP_THREAD_LIMIT", "1")  # as ours: one core per worker
    done = subprocess.run(
        ["tesseract", str(path), "stdout", "-l", "eng"],
        capture_output=True,
        check=True,
        env=env,
    )
    return done.stdout.decode("utf-8", "replace")


def _cpu() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _summary(rows: list[dict[str, Any]], key: str) -> float:
    return round(sum(r[key] for r in rows) / len(rows), 4) if rows else 0.0


PHOTOS = Path(__file__).resolve().parent / "ocr_photos.json"


def _photo_roots(extra: list[str]) -> list[Path]:
    """Folders the photo paths are looked up under: given ones, ``/``, site-packages."""
    return [*map(Path, extra), Path("/"), Path(sysconfig.get_paths()["purelib"])]


def load_photos(roots: list[Path]) -> tuple[list[tuple[dict[str, Any], Path]], list[str]]:
    """The photos of ``ocr_photos.json`` found under ``roots``, and the ids of those missing."""
    listed = json.loads(PHOTOS.read_text(encoding="utf-8"))["photos"]
    found: list[tuple[dict[str, Any], Path]] = []
    missing: list[str] = []
    for entry in listed:
        path = next((r / entry["path"] for r in roots if (r / entry["path"]).is_file()), None)
        if path is None:
            missing.append(f"{entry['id']} ({entry['package']}: {entry['path']})")
        else:
            found.append((entry, path))
    return found, missing


def _measure(
    engine: str, image: Any, path: Path, raw_rapid: Any, flip: bool
) -> tuple[str, list[ocr.OcrLine], dict[str, float], dict[str, float]]:
    """(raw text, our lines, seconds, CPU seconds), raw and ours run alternately."""
    import numpy as np
    from PIL import Image

    array = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    raw_text = ""
    lines: list[ocr.OcrLine] = []
    for which in ("ours", "raw") if flip else ("raw", "ours"):
        t0, c0 = time.perf_counter(), _cpu()
        if which == "ours":
            with Image.open(path) as opened:  # as the image extractor does
                lines = ocr.recognise(opened, lambda: None, engine)
        elif engine == "tesseract":
            raw_text = _tesseract_raw(path)
        else:
            found, _ = raw_rapid(array)
            raw_text = "\n".join(str(r[1]) for r in found or [])
        timings[which] = time.perf_counter() - t0
        cpu[which] = _cpu() - c0
    return raw_text, lines, timings, cpu


def photo_results(
    engines: list[str], raw_rapid: Any, roots: list[Path], repeat: int = 1
) -> dict[str, Any]:
    """CER and photos/s of every engine, raw and ours, on the real photos of text.

    Each photo runs ``repeat`` times (raw and ours alternately, the order flipping each
    time); the text is the last run's (both engines are deterministic).
    """
    from PIL import Image

    photos, missing = load_photos(roots)
    out: dict[str, Any] = {
        "photos": [e["id"] for e, _ in photos],
        "missing": missing,
        "repeat": repeat,
    }
    for engine in engines:
        rows: list[dict[str, Any]] = []
        raw_total = ours_total = raw_cpu = ours_cpu = 0.0
        for n, (entry, path) in enumerate(photos):
            with Image.open(path) as opened:
                image = opened.convert("RGB")
            reference = "\n".join(entry["lines"])
            raw_s = ours_s = 0.0
            for k in range(repeat):
                raw_text, lines, wall, cpu = _measure(
                    engine, image, path, raw_rapid, (n + k) % 2 == 1
                )
                raw_s += wall["raw"]
                ours_s += wall["ours"]
                raw_cpu += cpu["raw"]
                ours_cpu += cpu["ours"]
            raw_total += raw_s
            ours_total += ours_s
            text = "\n".join(ln.text for ln in lines)
            ours_cer, ours_nospace = cer(reference, text)
            raw_cer, _ = cer(reference, raw_text)
            summary = ocr.info(lines, engine)
            rows.append(
                {
                    "photo": entry["id"],
                    "kind": entry["kind"],
                    "size": list(image.size),
                    "cer": round(ours_cer, 4),
                    "cer_nospace": round(ours_nospace, 4),
                    "cer_caseless": round(cer(reference.lower(), text.lower())[0], 4),
                    "raw_cer": round(raw_cer, 4),
                    "raw_cer_caseless": round(cer(reference.lower(), raw_text.lower())[0], 4),
                    "mean_confidence": summary.mean_confidence,
                    "low_confidence_lines": summary.low_confidence_lines,
                    "text": " | ".join(ln.text for ln in lines),
                    "raw_text": " | ".join(ln for ln in raw_text.splitlines() if ln.strip()),
                    "same_text_as_raw": normalise(text) == normalise(raw_text),
                    "raw_s": round(raw_s / repeat, 3),
                    "ours_s": round(ours_s / repeat, 3),
                }
            )
        if not rows:
            continue
        scene = [r for r in rows if r["kind"] == "scene"]
        document = [r for r in rows if r["kind"] == "document"]
        out[engine] = {
            "version": ocr.engine_version(engine),
            "baseline": {
                "what": "tesseract PHOTO stdout -l eng"
                if engine == "tesseract"
                else "RapidOCR()(array), the wheel's defaults",
                "photos_per_s": round(len(rows) * repeat / raw_total, 3),
                "cpu_s": round(raw_cpu, 2),
                "cer": _summary(rows, "raw_cer"),
                "cer_caseless": _summary(rows, "raw_cer_caseless"),
            },
            "ours": {
                "what": f"thunderline.extract.ocr.recognise(engine={engine!r})",
                "photos_per_s": round(len(rows) * repeat / ours_total, 3),
                "cpu_s": round(ours_cpu, 2),
                "cer": _summary(rows, "cer"),
                "same_text_as_raw": sum(r["same_text_as_raw"] for r in rows),
                "cer_caseless": _summary(rows, "cer_caseless"),
                "cer_document_photo": _summary(document, "cer"),
                "cer_scene_photos": _summary(scene, "cer"),
                "cer_scene_photos_caseless": _summary(scene, "cer_caseless"),
            },
            "ratio": round(raw_total / ours_total, 3),
            "cpu_ratio": round(raw_cpu / ours_cpu, 3) if ours_cpu else None,
            "per_photo": rows,
        }
    return out


def main() -> None:
    """Render and degrade the pages, run every engine raw and ours, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--fonts", type=int, default=len(FONTS), help="How many fonts to use.")
    parser.add_argument("--engines", default="rapidocr,tesseract")
    parser.add_argument("--photos", action="store_true", help="Also the real photos of text.")
    parser.add_argument("--only-photos", action="store_true", help="Only the real photos.")
    parser.add_argument("--photo-root", action="append", default=[], help="Unpacked packages.")
    parser.add_argument("--repeat", type=int, default=1, help="Runs of each photo (timing).")
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    engines = [e for e in args.engines.split(",") if e]
    skipped: dict[str, str] = {}
    for engine in list(engines):
        problem = ocr.available(engine)
        if problem is not None:
            skipped[engine] = problem
            engines.remove(engine)
    fonts = [(n, p) for n, p in FONTS if p is None or p.exists()][: args.fonts]
    missing_fonts = [n for n, p in FONTS if p is not None and not p.exists()]

    pages: list[tuple[str, str, bool, str, Any]] = []
    for f, (font_name, font_path) in enumerate(fonts if not args.only_photos else []):
        for v, (variant, size, how) in enumerate(VARIANTS):
            lines = _lines(f * len(VARIANTS) + v)
            image = _degrade(_page(font_path, size, lines), how)
            pages.append((font_name, variant, variant.startswith("clean"), "\n".join(lines), image))

    raw_rapid: Any = None
    if "rapidocr" in engines:
        from rapidocr_onnxruntime import RapidOCR

        raw_rapid = RapidOCR()
        first = pages[0][4] if pages else _page(None, 32, _lines(0))
        warm = np.asarray(first)[:, :, ::-1].copy()
        raw_rapid(warm)  # load both outside the timing
        ocr.recognise(first, lambda: None, "rapidocr")

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tl-bench-ocr-") as tmp:
        files = []
        for n, page in enumerate(pages):
            path = Path(tmp) / f"page{n}.png"
            page[4].save(path)
            files.append(path)
        for engine in engines:
            rows: list[dict[str, Any]] = []
            raw_total = ours_total = 0.0
            cpus = {"raw": 0.0, "ours": 0.0}
            for n, (font_name, variant, clean, reference, image) in enumerate(pages):
                array = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()

                def run_raw(array: Any = array, path: Path = files[n], engine: str = engine) -> str:
                    if engine == "tesseract":
                        return _tesseract_raw(path)
                    found, _ = raw_rapid(array)
                    return "\n".join(str(r[1]) for r in found or [])

                def run_ours(path: Path = files[n], engine: str = engine) -> list[ocr.OcrLine]:
                    with Image.open(path) as opened:  # as the image extractor does
                        return ocr.recognise(opened, lambda: None, engine)

                timings: dict[str, float] = {}
                outputs: dict[str, Any] = {}
                order = ("raw", "ours") if n % 2 == 0 else ("ours", "raw")
                for which in order:
                    t0, c0 = time.perf_counter(), _cpu()
                    outputs[which] = run_raw() if which == "raw" else run_ours()
                    timings[which] = time.perf_counter() - t0
                    cpus[which] += _cpu() - c0
                raw_total += timings["raw"]
                ours_total += timings["ours"]
                lines = outputs["ours"]
                ours_cer, ours_nospace = cer(reference, "\n".join(ln.text for ln in lines))
                raw_cer, raw_nospace = cer(reference, outputs["raw"])
                summary = ocr.info(lines, engine)
                rows.append(
                    {
                        "font": font_name,
                        "page": variant,
                        "clean": clean,
                        "cer": round(ours_cer, 4),
                        "cer_nospace": round(ours_nospace, 4),
                        "raw_cer": round(raw_cer, 4),
                        "raw_cer_nospace": round(raw_nospace, 4),
                        "mean_confidence": summary.mean_confidence,
                        "low_confidence_lines": summary.low_confidence_lines,
                        "raw_s": round(timings["raw"], 3),
                        "ours_s": round(timings["ours"], 3),
                    }
                )
            if not rows:
                continue
            clean_rows = [r for r in rows if r["clean"]]
            degraded = [r for r in rows if not r["clean"]]
            results[engine] = {
                "version": ocr.engine_version(engine),
                "baseline": {
                    "what": "tesseract PAGE.png stdout -l eng"
                    if engine == "tesseract"
                    else "RapidOCR()(array), the wheel's defaults",
                    "pages_per_s": round(len(rows) / raw_total, 3),
                    "cpu_s": round(cpus["raw"], 2),
                    "cer_clean": _summary(clean_rows, "raw_cer"),
                    "cer_degraded": _summary(degraded, "raw_cer"),
                },
                "ours": {
                    "what": f"thunderline.extract.ocr.recognise(engine={engine!r})",
                    "pages_per_s": round(len(rows) / ours_total, 3),
                    "cpu_s": round(cpus["ours"], 2),
                    "cer_clean": _summary(clean_rows, "cer"),
                    "cer_degraded": _summary(degraded, "cer"),
                    "cer_clean_nospace": _summary(clean_rows, "cer_nospace"),
                    "cer_degraded_nospace": _summary(degraded, "cer_nospace"),
                    "worst_clean": max((r["cer"] for r in clean_rows), default=0.0),
                    "worst_degraded": max((r["cer"] for r in degraded), default=0.0),
                },
                "ratio": round(raw_total / ours_total, 3),
                "cpu_ratio": round(cpus["raw"] / cpus["ours"], 3) if cpus["ours"] else None,
                "per_page": rows,
            }
    result = {
        "name": "ocr",
        "pages": len(pages),
        "fonts": [n for n, _ in fonts] if pages else [],
        "missing_fonts": missing_fonts,
        "skipped_engines": skipped,
        "engines": results,
        "real_photos": (
            photo_results(engines, raw_rapid, _photo_roots(args.photo_root), max(1, args.repeat))
            if args.photos or args.only_photos
            else None
        ),
        "goal": {"cer_clean": 0.02, "cer_degraded": 0.08, "ratio": 0.9},
        "unit": "ratio = our pages/s / raw engine pages/s; cer = edit distance / reference chars",
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
