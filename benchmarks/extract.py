"""Extraction benchmark: each extractor against its raw library on the same files, in one run.

Files: the multi-format corpus (:func:`thunderline.testing.corpus.build_corpus`, made by each
format's own tools), the legacy Office and Outlook fixtures (``tests/fixtures/legacy``; the
raw baseline of .doc, .ppt and .msg is olefile reading the same streams, of .xls xlrd's cell
values) plus the real PDFs on this machine (``examples/shared-mime-info-spec.pdf``
and, when present, ``/usr/share/doc/libtasn1-doc/libtasn1.pdf``).

- **per format**: our extractor function (in process: text builder, segments, headings,
  metadata, caps) against the bare library call that yields the same text (e.g.
  ``docx.Document(path)`` + paragraph texts, ``pdfium`` ``get_text_bounded`` per page);
  ``ratio`` = raw time / ours (higher is better, goal >= 0.9). Where the extractor returns
  more than the bare call (EXIF and GPS, font names, certificate fields, HTML title, meta and
  block boundaries with h1-h6 headings kept as structure, e-mail headers and attachments, tags
  and duration, docx tables and core properties, pptx slide titles, tables, notes and core
  properties, xls summary metadata, msg headers, recipients and attachments),
  ``ratio_same_output`` compares it with the same library asked for those fields
  too (:data:`SAME`): the cost of our code alone. Calls are interleaved one by one and timed in
  CPU time of the process, median kept (:func:`_paired`): on a loaded machine wall-clock
  batches gave ratios that moved by 2-5x between two runs of the same commit.
- **isolation cost**: the same files through :class:`ExtractPool` (one worker process,
  started beforehand): per-file round trip against in-process.
- **PDF readers**: pypdf against pypdfium2 on the real PDFs: seconds per page and how many of
  pypdf's words pypdfium2 finds too.

The last line is one JSON object (``ratio``: the geometric mean of the per-format ratios).
``--only a.html,b.pem`` measures only those files (no PDF-reader or pool section).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import re
import statistics
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


# ---- same-output baselines: the same library calls for every field the extractor returns --
def _same_image(path: Path) -> str:
    from PIL import ExifTags, Image

    with Image.open(path) as image:
        exif = image.getexif()
        fields = {ExifTags.TAGS.get(t, str(t)): v for t, v in exif.items()}
        fields.update(exif.get_ifd(ExifTags.IFD.Exif))
        gps = dict(exif.get_ifd(ExifTags.IFD.GPSInfo))
        xmp = image.info.get("xmp")
        return str((fields, gps, xmp, image.width, image.height, getattr(image, "n_frames", 1)))


def _same_font(path: Path) -> str:
    from fontTools.ttLib import TTFont

    with TTFont(str(path), lazy=True) as font:
        names = [font["name"].getDebugName(i) for i in (1, 2, 4, 5, 8, 9, 13)]
        return str((names, font["maxp"].numGlyphs))


def _same_cert(path: Path) -> str:
    from cryptography import x509

    out = []
    for cert in x509.load_pem_x509_certificates(path.read_bytes()):
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            san = sans.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            san = []
        out.append(
            (
                cert.subject.rfc4514_string(),
                cert.issuer.rfc4514_string(),
                cert.serial_number,
                cert.not_valid_before_utc,
                cert.not_valid_after_utc,
                san,
                cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME),
            )
        )
    return str(out)


#: The block elements and dropped elements of the HTML reader (thunderline.extract.formats.text).
_HTML_BLOCKS = frozenset(
    [
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "tr",
        "td",
        "th",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "title",
        "pre",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
        "nav",
        "aside",
        "dd",
        "dt",
        "hr",
        "figcaption",
    ]
)
_HTML_DROP = ["script", "style", "noscript", "template", "svg", "title"]


def _same_html(path: Path) -> str:
    """selectolax asked for what the HTML reader returns: title, meta, lang, and the body text
    with its block boundaries and h1-h6 headings kept as structure (issue 18: "headings kept as
    structure"), through the cheapest calls found (tag-name lookups, one walk, no CSS).
    """
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(path.read_text("utf-8"))
    titles = tree.tags("title")
    title = titles[0].text() if titles else None
    meta = {n.attributes.get("name"): n.attributes.get("content") for n in tree.tags("meta")}
    lang = tree.root.attributes.get("lang") if tree.root is not None else None
    tree.strip_tags(_HTML_DROP)
    body = tree.body
    headings = []
    if body is not None:
        for node in [n for n in body.traverse() if n.tag in _HTML_BLOCKS]:
            if node.tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                headings.append((node.tag, node.text()))
            node.insert_after("\n")
    text = _clean_lines(body.text()) if body is not None else ""
    return str((title, meta, lang, headings, text))


def _clean_lines(text: str) -> str:
    """The text as the reader returns it: each line's whitespace collapsed, blank lines out.

    Without it the baseline's text is not the reader's (selectolax keeps the markup's
    indentation and blank lines): :func:`_check_same_html` holds the two equal.
    """
    return "\n".join(c for c in (" ".join(line.split()) for line in text.splitlines()) if c)


def _check_same_html(path: Path) -> None:
    """Refuse to time the HTML baseline unless its text is the reader's, character for character."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(path.read_text("utf-8"))
    tree.strip_tags(_HTML_DROP)
    body = tree.body
    if body is None:
        return
    for node in [n for n in body.traverse() if n.tag in _HTML_BLOCKS]:
        node.insert_after("\n")
    ours = extractor_for("html").run(path, ExtractContext(label="html")).text
    if _clean_lines(body.text()) != ours:
        raise SystemExit(f"{path.name}: the same-output baseline's text is not the reader's")


def _same_email(path: Path) -> str:
    import email
    import email.policy

    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    headers = [message.get(h) for h in ("from", "to", "cc", "subject", "date", "message-id")]
    body = message.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
    text = str(body.get_content()) if body is not None else ""
    parts = [p.get_payload(decode=True) for p in message.iter_attachments()]  # type: ignore[attr-defined]
    return str((headers, text, [len(p or b"") for p in parts]))


def _same_audio(path: Path) -> str:
    import mutagen

    found = mutagen.File(str(path))
    return str((found.tags, found.info.length))


def _same_docx(path: Path) -> str:
    import docx

    document = docx.Document(str(path))
    text = [p.text for p in document.paragraphs]
    cells = [c.text for t in document.tables for r in t.rows for c in r.cells]
    props = document.core_properties
    return str((text, cells, props.title, props.author, props.created))


def _same_pptx(path: Path) -> str:
    """python-pptx asked for what the pptx reader returns: slide titles, shape paragraphs,
    table cells, notes, core properties.
    """
    from pptx import Presentation

    deck = Presentation(str(path))
    out = []
    for slide in deck.slides:
        title = slide.shapes.title
        out.append(title.text_frame.text if title is not None else None)
        for shape in slide.shapes:
            if shape.has_text_frame:
                out.extend(p.text for p in shape.text_frame.paragraphs)
            if getattr(shape, "has_table", False) and shape.has_table:
                out.extend(c.text for r in shape.table.rows for c in r.cells)
        if slide.has_notes_slide:
            out.append(slide.notes_slide.notes_text_frame.text)
    props = deck.core_properties
    return str((out, props.title, props.author, props.created))


def _same_xls(path: Path) -> str:
    """xlrd's cell values plus the summary metadata (title, author, dates, application) the
    xls reader returns, which xlrd does not read: olefile opens the file once, gives the
    metadata and the ``Workbook`` stream, xlrd reads that stream.
    """
    import olefile
    import xlrd

    with olefile.OleFileIO(str(path)) as ole:
        meta = ole.get_metadata()
        biff = ole.openstream("Workbook").read()
    book = xlrd.open_workbook(file_contents=biff, on_demand=True)
    text = "\n".join(
        " ".join(str(v) for v in sheet.row_values(r))
        for sheet in (book.sheet_by_index(i) for i in range(book.nsheets))
        for r in range(sheet.nrows)
    )
    book.release_resources()
    return f"{meta.title!r} {meta.author!r} {meta.create_time!r} {text}"


#: The MAPI properties the .msg reader returns, of the message, its attachments and attached
#: messages (not of recipient storages): subject, topic, class, sender name / address / SMTP,
#: sent-representing, To, Cc, ids, transport headers, plain / HTML body, attachment
#: long file name (the name the reader finds first), MIME type and data.
_MSG_PIDS = frozenset(
    {
        "0037",
        "0070",
        "001A",
        "0C1A",
        "0C1F",
        "5D01",
        "0042",
        "0E04",
        "0E03",
        "1035",
        "1042",
        "007D",
        "1000",
        "1013",
        "3707",
        "370E",
        "3701",
    }
)


def _same_msg(path: Path) -> str:
    """olefile reading what the .msg reader returns: every fixed-property stream and every
    stream of the properties above (headers, bodies, attachments, attached messages)."""
    import olefile

    with olefile.OleFileIO(str(path)) as ole:
        sizes = []
        for entry in ole.listdir(streams=True, storages=False):
            if any(part.startswith("__recip_version1.0_") for part in entry):
                continue
            leaf = entry[-1]
            if leaf == "__properties_version1.0" or (
                leaf.startswith("__substg1.0_") and leaf[12:16] in _MSG_PIDS
            ):
                sizes.append(len(ole.openstream(entry).read()))
        return str(sizes)


#: Baselines that ask the library for everything the extractor returns (metadata fields,
#: headings, attachments): the ratio against these is the cost of our code alone.
SAME: dict[str, Callable[[Path], str]] = {
    "photo.jpg": _same_image,
    "curie.ttf": _same_font,
    "curie.pem": _same_cert,
    "page.html": _same_html,
    "samples.eml": _same_email,
    "song.wav": _same_audio,
    "report.docx": _same_docx,
    "review.pptx": _same_pptx,
    "cities.xls": _same_xls,
    "other.msg": _same_msg,
}
#: Per file, calls alternate raw / ours until this budget, at least MIN_CALLS pairs.
BUDGET_S = 3.0
MIN_CALLS = 9


def _paired(fns: list[Callable[[], object]]) -> list[float]:
    """Median CPU seconds per call of each function, calls interleaved one by one.

    CPU time of this process (``time.process_time``), not wall time: on this shared 2-core
    machine (load average about 20) a call is descheduled for tens of milliseconds at
    random, which wall-clock batches turned into 2-5x swings between two runs of one commit.
    """
    times: list[list[float]] = [[] for _ in fns]
    started = time.perf_counter()
    n = 0
    while n < MIN_CALLS or time.perf_counter() - started < BUDGET_S:
        order = list(range(len(fns)))
        if n % 2:
            order.reverse()
        for i in order:
            t0 = time.process_time()
            fns[i]()
            times[i].append(time.process_time() - t0)
        n += 1
    return [max(statistics.median(t), 1e-9) for t in times]


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


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; ``--only a.html,b.pem`` measures those files alone (no PDF-reader or
    pool section), e.g. ``python benchmarks/extract.py --only page.html``.
    """
    args = sys.argv[1:] if argv is None else argv
    only = set(args[args.index("--only") + 1].split(",")) if "--only" in args else None
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
        if only is not None:
            files = {name: spec for name, spec in files.items() if name in only}
            pdfs = [pdf for pdf in pdfs if pdf.name in only]
        per_format: dict[str, Any] = {}
        for name, (label, path, raw) in files.items():
            ours_fn = _ours(label, path)
            fns: list[Callable[[], object]] = [lambda raw=raw, path=path: raw(path), ours_fn]
            same = SAME.get(name)
            if same is _same_html:
                _check_same_html(path)
            if same is not None:
                fns.append(lambda same=same, path=path: same(path))
            for fn in fns:  # warm: imports, caches
                fn()
            best = _paired(fns)
            per_format[name] = {
                "label": label,
                "raw_ms": round(best[0] * 1000, 4),
                "ours_ms": round(best[1] * 1000, 4),
                "ratio": round(best[0] / best[1], 3),
            }
            if same is not None:
                per_format[name]["same_output_ms"] = round(best[2] * 1000, 4)
                per_format[name]["ratio_same_output"] = round(best[2] / best[1], 3)
        ratios = [v["ratio"] for v in per_format.values()]
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        same_ratios = [v.get("ratio_same_output", v["ratio"]) for v in per_format.values()]
        geo_same = math.exp(sum(math.log(r) for r in same_ratios) / len(same_ratios))
        readers = pdf_readers(pdfs) if pdfs else {}
        cost = (
            asyncio.run(pool_cost([(label, path) for label, path, _ in files.values()]))
            if only is None
            else {}
        )
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
            "ratio_same_output": round(geo_same, 3),
            "method": (
                f"calls interleaved one by one for {BUDGET_S} s per file (at least "
                f"{MIN_CALLS} each); median process CPU time of each"
            ),
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
