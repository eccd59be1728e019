"""Extraction benchmark: each extractor against its raw library on the same files, in one run.

Files: the multi-format corpus (:func:`thunderline.testing.corpus.build_corpus`, made by each
format's own tools), the legacy Office and Outlook fixtures (``tests/fixtures/legacy``; the
raw baseline of .doc, .ppt and .msg is olefile reading the same streams, of .xls xlrd's cell
values) plus the real PDFs on this machine (``examples/shared-mime-info-spec.pdf``
and, when present, ``/usr/share/doc/libtasn1-doc/libtasn1.pdf``).

- **per format**: our extractor function (in process: text builder, segments, headings,
  metadata, caps) against the bare library call that yields the same text (e.g.
  ``docx.Document(path)`` + paragraph texts, ``pdfium`` ``get_text_bounded`` per page);
  rounds alternate the order, the best round of each is kept; ``ratio`` = raw time / ours
  (higher is better, goal >= 0.9).
- **isolation cost**: the same files through :class:`ExtractPool` (one worker process,
  started beforehand): per-file round trip against in-process.
- **PDF readers**: pypdf against pypdfium2 on the real PDFs: seconds per page and how many of
  pypdf's words pypdfium2 finds too.

The last line is one JSON object (``ratio``: the geometric mean of the per-format ratios).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from thunderline.extract.base import ExtractContext
from thunderline.extract.formats import pdf as pdf_mod
from thunderline.extract.pool import ExtractPool, Job, PoolConfig
from thunderline.extract.registry import extractor_for
from thunderline.testing.corpus import build_corpus

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3
REPEAT_S = 0.3  # repeat each file until about this long per round


def _raw_pdf(path: Path) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    try:
        out = []
        for i in range(len(doc)):
            page = doc[i]
            tp = page.get_textpage()
            out.append(tp.get_text_bounded())
            tp.close()
            page.close()
        return "\n".join(out)
    finally:
        doc.close()


def _raw_docx(path: Path) -> str:
    import docx

    return "\n".join(p.text for p in docx.Document(str(path)).paragraphs)


def _raw_pptx(path: Path) -> str:
    from pptx import Presentation

    return "\n".join(
        s.text_frame.text
        for slide in Presentation(str(path)).slides
        for s in slide.shapes
        if s.has_text_frame
    )


def _raw_xlsx(path: Path) -> str:
    import openpyxl

    with path.open("rb") as handle:
        book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        text = "\n".join(
            " ".join(str(v) for v in row if v is not None)
            for sheet in book.worksheets
            for row in sheet.iter_rows(values_only=True)
        )
        book.close()
    return text


def _raw_markdown(path: Path) -> str:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(path.read_text("utf-8"))
    return "\n".join(t.content for t in tokens if t.type == "inline")


def _raw_rst(path: Path) -> str:
    import io

    from docutils.core import publish_doctree

    tree = publish_doctree(
        path.read_text("utf-8"),
        settings_overrides={"report_level": 5, "warning_stream": io.StringIO()},
    )
    return str(tree.astext())


def _raw_latex(path: Path) -> str:
    from pylatexenc.latex2text import LatexNodes2Text

    return str(LatexNodes2Text().latex_to_text(path.read_text("utf-8")))


def _raw_html(path: Path) -> str:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(path.read_text("utf-8"))
    return tree.body.text() if tree.body is not None else ""


def _raw_email(path: Path) -> str:
    import email
    import email.policy

    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
    return str(body.get_content()) if body is not None else ""


def _raw_image(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return str(dict(image.getexif()))


def _raw_audio(path: Path) -> str:
    import mutagen

    return str(mutagen.File(str(path)).tags)


def _raw_font(path: Path) -> str:
    from fontTools.ttLib import TTFont

    with TTFont(str(path), lazy=True) as font:
        return str(font["name"].getDebugName(4))


def _raw_cert(path: Path) -> str:
    from cryptography import x509

    return str(
        [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(path.read_bytes())]
    )


def _raw_ole(path: Path, streams: tuple[str, ...]) -> str:
    """olefile, the library the .doc, .ppt and .msg readers sit on: open, read the streams
    the reader reads, parse the summary property set."""
    import olefile

    with olefile.OleFileIO(str(path)) as ole:
        sizes = [len(ole.openstream(name).read()) for name in streams if ole.exists(name)]
        meta = ole.get_metadata()
        return f"{sizes} {meta.title!r} {meta.author!r}"


def _raw_doc(path: Path) -> str:
    return _raw_ole(path, ("WordDocument", "1Table", "0Table"))


def _raw_ppt(path: Path) -> str:
    return _raw_ole(path, ("PowerPoint Document",))


def _raw_msg(path: Path) -> str:
    import olefile

    with olefile.OleFileIO(str(path)) as ole:
        return str(
            [
                len(ole.openstream(entry).read())
                for entry in ole.listdir(streams=True, storages=False)
                if entry[-1].startswith(
                    ("__substg1.0_0037", "__substg1.0_1000", "__substg1.0_3701")
                )
            ]
        )


def _raw_xls(path: Path) -> str:
    import xlrd

    book = xlrd.open_workbook(str(path), on_demand=True)
    text = "\n".join(
        " ".join(str(v) for v in sheet.row_values(r))
        for sheet in (book.sheet_by_index(i) for i in range(book.nsheets))
        for r in range(sheet.nrows)
    )
    book.release_resources()
    return text


#: Real legacy files (tests/fixtures/legacy): LibreOffice conversions and real Outlook messages.
LEGACY: dict[str, tuple[str, Callable[[Path], str]]] = {
    "report.doc": ("doc", _raw_doc),
    "cities.xls": ("xls", _raw_xls),
    "review.ppt": ("ppt", _raw_ppt),
    "other.msg": ("outlook", _raw_msg),
}

RAW: dict[str, tuple[str, Callable[[Path], str]]] = {
    "report.docx": ("docx", _raw_docx),
    "review.pptx": ("pptx", _raw_pptx),
    "cities.xlsx": ("xlsx", _raw_xlsx),
    "notes.md": ("markdown", _raw_markdown),
    "guide.rst": ("rst", _raw_rst),
    "paper.tex": ("latex", _raw_latex),
    "page.html": ("html", _raw_html),
    "samples.eml": ("eml", _raw_email),
    "photo.jpg": ("jpeg", _raw_image),
    "song.wav": ("wav", _raw_audio),
    "curie.ttf": ("ttf", _raw_font),
    "curie.pem": ("pem", _raw_cert),
}


def _timed(fn: Callable[[], object]) -> float:
    """Seconds per call: repeated until about REPEAT_S."""
    n = 0
    started = time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - started
        if elapsed >= REPEAT_S and n >= 3:
            return elapsed / n


def _ours(label: str, path: Path) -> Callable[[], object]:
    extractor = extractor_for(label, "", True)
    return lambda: extractor.run(path, ExtractContext(label=label))


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w{3,}", text)}


def pdf_readers(pdfs: list[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in pdfs:
        pages = len(
            pdf_mod.extract_pdf_pypdf(
                path, ExtractContext(label="pdf", max_text_bytes=10**8)
            ).segments
        )
        best = {"pypdf": math.inf, "pypdfium2": math.inf}
        texts: dict[str, str] = {}
        for _ in range(2):
            for name, fn in (
                ("pypdf", pdf_mod.extract_pdf_pypdf),
                ("pypdfium2", pdf_mod.extract_pdf_pdfium),
            ):
                t0 = time.perf_counter()
                texts[name] = fn(path, ExtractContext(label="pdf", max_text_bytes=10**8)).text
                best[name] = min(best[name], time.perf_counter() - t0)
        a, b = _words(texts["pypdf"]), _words(texts["pypdfium2"])
        out[path.name] = {
            "pages": pages,
            "pypdf_s_per_page": round(best["pypdf"] / pages, 5),
            "pypdfium2_s_per_page": round(best["pypdfium2"] / pages, 5),
            "speedup": round(best["pypdf"] / best["pypdfium2"], 2),
            "pypdf_words_found_by_pypdfium2": round(len(a & b) / max(len(a), 1), 3),
            "pypdfium2_words_found_by_pypdf": round(len(a & b) / max(len(b), 1), 3),
        }
    return out


async def pool_cost(files: list[tuple[str, Path]]) -> dict[str, float]:
    pool = ExtractPool(PoolConfig(workers=1))
    await pool.start()
    try:
        in_process = 0.0
        through_pool = 0.0
        for n, (label, path) in enumerate(files):
            extractor = extractor_for(label, "", True)
            t0 = time.perf_counter()
            extractor.run(path, ExtractContext(label=label))
            in_process += time.perf_counter() - t0
            job = Job(
                id=str(n),
                path=str(path),
                extractor=extractor.name,
                kind=extractor.kind,
                label=label,
            )
            await pool.extract(job)  # warm the worker's imports for this format
            t0 = time.perf_counter()
            await pool.extract(job)
            through_pool += time.perf_counter() - t0
    finally:
        await pool.close()
    return {
        "files": len(files),
        "in_process_ms_per_file": round(in_process / len(files) * 1000, 3),
        "pool_ms_per_file": round(through_pool / len(files) * 1000, 3),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build_corpus(folder)
        pdfs = [ROOT / "examples" / "shared-mime-info-spec.pdf"]
        extra = Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf")
        if extra.is_file():
            pdfs.append(extra)
        files = {name: (label, folder / name, raw) for name, (label, raw) in RAW.items()}
        legacy = ROOT / "tests" / "fixtures" / "legacy"
        for name, (label, raw) in LEGACY.items():
            if extractor_for(label).name != "none":  # absent before the legacy readers
                files[name] = (label, legacy / name, raw)
        for pdf in pdfs:
            files[pdf.name] = ("pdf", pdf, _raw_pdf)
        per_format: dict[str, Any] = {}
        for name, (label, path, raw) in files.items():
            ours_fn = _ours(label, path)
            best_raw, best_ours = math.inf, math.inf
            for r in range(ROUNDS):
                order = [("raw", lambda raw=raw, path=path: raw(path)), ("ours", ours_fn)]
                if r % 2:
                    order.reverse()
                for who, fn in order:
                    t = _timed(fn)
                    if who == "raw":
                        best_raw = min(best_raw, t)
                    else:
                        best_ours = min(best_ours, t)
            per_format[name] = {
                "label": label,
                "raw_ms": round(best_raw * 1000, 4),
                "ours_ms": round(best_ours * 1000, 4),
                "ratio": round(best_raw / best_ours, 3),
            }
        ratios = [v["ratio"] for v in per_format.values()]
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        readers = pdf_readers(pdfs)
        cost = asyncio.run(pool_cost([(label, path) for label, path, _ in files.values()]))
    result = {
        "name": "extract",
        "baseline": {
            "what": "bare library call per file (in process)",
            "per_format_ms": {k: v["raw_ms"] for k, v in per_format.items()},
        },
        "ours": {
            "what": "extractor function (text builder, segments, headings, metadata)",
            "per_format": per_format,
            "worst_ratio": min(ratios),
            "isolation": cost,
            "pdf_readers": readers,
        },
        "ratio": round(geo, 3),
        "goal": 0.9,
        "unit": "raw seconds / our seconds per file (geometric mean over formats)",
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "pypdfium2": version("pypdfium2"),
            "pypdf": version("pypdf"),
            "python-docx": version("python-docx"),
            "openpyxl": version("openpyxl"),
            "docutils": version("docutils"),
            "olefile": version("olefile"),
            "xlrd": version("xlrd"),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
