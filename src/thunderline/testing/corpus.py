"""A multi-format corpus made on this machine by the real tools of each format.

:func:`build_corpus` writes one file per format into a folder and returns, for each, what an
extractor must find in it (:class:`Sample`: a phrase of its text, metadata fields). The
makers are the format's own libraries: python-docx, python-pptx and openpyxl write OOXML,
docutils' ODF writer writes ODT, Python's ``email`` / ``mailbox`` write e-mail, Pillow writes
JPEG with EXIF (GPS included) and image-only PDFs, ``wave`` + mutagen write a tagged WAV,
fontTools' FontBuilder writes a TrueType font, cryptography writes a certificate. EPUB, the
text formats and the containers (ar/deb, tar.zst, jar) are written as their specifications
say with the standard library. Nothing is downloaded; the same machine gives the same files.
Used by the tests, ``benchmarks/extract_*.py`` and the coverage table.
"""

from __future__ import annotations

import email.message
import io
import mailbox
import tarfile
import wave
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PROSE = (
    "Marie Curie was born in Warsaw and worked in Paris at the University of Paris. "
    "She received the Nobel Prize in Physics in 1903 with Pierre Curie."
)


@dataclass(frozen=True)
class Sample:
    """One corpus file and what its extraction must yield."""

    name: str
    label: str  # the Magika label it is expected to get
    phrase: str | None  # a phrase the text must contain (None: no text expected)
    meta: dict[str, Any] = field(default_factory=dict)  # DocMetadata fields expected
    parts: int = 0  # embedded parts expected
    absent: tuple[str, ...] = ()  # strings the text must NOT contain (markup)


def _docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "Curie report"
    document.core_properties.author = "Ada Lovelace"
    document.add_heading("Radioactivity", level=1)
    document.add_paragraph(PROSE)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Element"
    table.rows[0].cells[1].text = "Polonium"
    document.save(str(path))


def _pptx(path: Path) -> None:
    from pptx import Presentation

    deck = Presentation()
    deck.core_properties.title = "Quarterly review"
    for title, body in (("Results", PROSE), ("Outlook", "Growth continues in Lyon.")):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(path))


def _xlsx(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Cities"
    sheet.append(["City", "Country"])
    sheet.append(["Warsaw", "Poland"])
    second = book.create_sheet("Totals")
    second.append(["Total", 2])
    book.properties.creator = "Grace Hopper"
    book.save(str(path))


def _odt(path: Path) -> None:
    from docutils.core import publish_string

    source = f"===========\nCurie notes\n===========\n\n:Author: Lise Meitner\n\nHistory\n=======\n\n{PROSE}\n"
    data = publish_string(source, writer="odf_odt", settings_overrides={"report_level": 5})
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))


def _epub(path: Path) -> None:
    container = (
        '<?xml version="1.0"?><container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
        'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:identifier id="id">urn:uuid:1</dc:identifier><dc:title>Curie, a life</dc:title>'
        "<dc:creator>Eve Curie</dc:creator><dc:language>en</dc:language></metadata>"
        '<manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="c2" href="c2.xhtml" media-type="application/xhtml+xml"/></manifest>'
        '<spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>'
    )
    chapter = (
        '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>{t}'
        "</title></head><body><h1>{t}</h1><p>{p}</p></body></html>"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        zf.writestr("META-INF/container.xml", container)
        zf.writestr("OEBPS/content.opf", opf)
        zf.writestr("OEBPS/c1.xhtml", chapter.format(t="Warsaw", p=PROSE))
        zf.writestr("OEBPS/c2.xhtml", chapter.format(t="Paris", p="Later years in France."))


def _eml(path: Path) -> None:
    message = email.message.EmailMessage()
    message["From"] = "Pierre Curie <pierre@example.org>"
    message["To"] = "marie@example.org"
    message["Subject"] = "Samples from Joachimsthal"
    message["Date"] = "Tue, 03 Feb 1898 10:00:00 +0100"
    message.set_content(PROSE)
    message.add_attachment(
        b"Pitchblende residue, 100 kg.\n", maintype="text", subtype="plain", filename="order.txt"
    )
    message.add_attachment(
        _docx_bytes(), maintype="application", subtype="octet-stream", filename="report.docx"
    )
    path.write_bytes(bytes(message))


def _docx_bytes() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "a.docx"
        _docx(target)
        return target.read_bytes()


def _mbox(path: Path) -> None:
    box = mailbox.mbox(str(path), create=True)
    try:
        for n, subject in enumerate(("First letter", "Second letter")):
            message = email.message.EmailMessage()
            message["From"] = "Irene Joliot-Curie <irene@example.org>"
            message["Subject"] = subject
            message["Date"] = f"Mon, 0{n + 1} Mar 1930 09:00:00 +0000"
            message.set_content(f"Letter {n + 1}. {PROSE}")
            box.add(message)
        box.flush()
    finally:
        box.close()


def _jpeg(path: Path) -> None:
    from PIL import Image

    image = Image.new("RGB", (64, 48), (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "Thunderline"  # Make
    exif[0x0110] = "TL-1"  # Model
    exif[0x0132] = "2024:05:06 07:08:09"  # DateTime
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.0)
    gps[3] = "E"
    gps[4] = (2.0, 17.0, 40.0)
    image.save(path, "JPEG", exif=exif)


def _wav(path: Path) -> None:
    from mutagen.wave import WAVE

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000 * 2)  # 2 s of silence
    from mutagen.id3 import TIT2, TPE1

    tagged = WAVE(str(path))
    tagged.add_tags()
    assert tagged.tags is not None
    tagged.tags.add(TIT2(encoding=3, text="Radium song"))
    tagged.tags.add(TPE1(encoding=3, text="The Curies"))
    tagged.save()


def _font(path: Path) -> None:
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", "A"])
    builder.setupCharacterMap({65: "A"})
    pen = TTGlyphPen(None)
    pen.moveTo((0, 0))
    pen.lineTo((500, 700))
    pen.lineTo((1000, 0))
    pen.closePath()
    glyph = pen.glyph()
    builder.setupGlyf({".notdef": glyph, "A": glyph})
    builder.setupHorizontalMetrics({".notdef": (1000, 0), "A": (1000, 0)})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable(
        {"familyName": "Curie Sans", "styleName": "Regular", "designer": "Eve Curie"}
    )
    builder.setupOS2()
    builder.setupPost()
    builder.save(str(path))


def _cert(path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "curie.example.org")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1234)
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2034, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _scan_pdf(path: Path) -> None:
    """An image-only PDF (a "scan": no text layer) made by Pillow."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (600, 200), 255)
    ImageDraw.Draw(image).text((20, 80), "SCANNED LETTER", fill=0)
    image.save(path, "PDF", resolution=72.0)


_TEXT_FILES: dict[str, tuple[str, str]] = {
    "notes.md": (
        "markdown",
        "---\ntitle: Field notes\nauthor: Marie Curie\n---\n\n# Contents\n\n## Radium\n\n"
        f"{PROSE}\n\n```python\nprint('code is left out')\n```\n\n- a [linked](http://example.org) item\n",
    ),
    "guide.rst": (
        "rst",
        f"Guide\n=====\n\n:Author: Pierre Curie\n\nContents\n--------\n\n{PROSE}\n\n.. code-block:: python\n\n   x = 1\n",
    ),
    "paper.tex": (
        "latex",
        "\\documentclass{article}\\title{On Radium}\\author{Marie Curie}\\begin{document}\\maketitle"
        f"\\section{{Introduction}}{PROSE} \\emph{{Emphasis}} and $x^2$.\\end{{document}}\n",
    ),
    "page.html": (
        "html",
        "<html lang='en'><head><title>Curie page</title><meta name='author' content='Eve'>"
        f"<script>var x=1;</script></head><body><h2>Life</h2><p>{PROSE}</p></body></html>",
    ),
    "film.srt": (
        "srt",
        f"1\n00:00:01,000 --> 00:00:04,000\n<i>{PROSE}</i>\n\n2\n00:00:05,000 --> 00:00:09,500\nThe end.\n",
    ),
    "lectures.ics": (
        "ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Thunderline//Corpus//EN\r\nX-WR-CALNAME:Lectures\r\n"
        "BEGIN:VEVENT\r\nUID:1\r\nDTSTART:19030610T100000Z\r\nSUMMARY:Lecture on radium\r\n"
        f"DESCRIPTION:{PROSE[:60]}\r\n {PROSE[60:]}\r\nLOCATION:Sorbonne\\, Paris\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    ),
    "cities.csv": ("csv", "city,country,population\nWarsaw,Poland,1800000\nParis,France,2100000\n"),
    "settings.ini": ("ini", "[server]\nhost = example.org\nport = 8080\n"),
    "letter.rtf": (
        "rtf",
        "{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Times;}}{\\info{\\title Letter}{\\author Marie}}"
        f"\\f0 {PROSE}\\par Caf\\'e9 Paris.\\par}}",
    ),
}


def build_corpus(folder: Path) -> list[Sample]:
    """Write the corpus into ``folder`` (created) and return what each file must yield."""
    folder.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    for name, (_label, text) in _TEXT_FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    samples += [
        Sample(
            "notes.md",
            "markdown",
            "Marie Curie was born",
            {"title": "Field notes"},
            absent=("##", "```", "http://", "print("),
        ),
        Sample(
            "guide.rst",
            "rst",
            "Nobel Prize in Physics",
            {"title": "Guide"},
            absent=("====", "x = 1", ":Author:"),
        ),
        Sample(
            "paper.tex",
            "latex",
            "Marie Curie was born",
            {"title": "On Radium"},
            absent=("\\section", "\\emph", "\\documentclass"),
        ),
        Sample(
            "page.html",
            "html",
            "Marie Curie was born",
            {"title": "Curie page"},
            absent=("var x", "<p>"),
        ),
        Sample(
            "film.srt", "srt", "Marie Curie was born", {"duration_s": 9.5}, absent=("-->", "<i>")
        ),
        Sample(
            "lectures.ics",
            "ics",
            "Lecture on radium",
            {"title": "Lectures"},
            absent=("BEGIN:", "DTSTART"),
        ),
        Sample("cities.csv", "csv", "Warsaw | Poland", {}),
        Sample("settings.ini", "ini", "host = example.org", {}),
        Sample("letter.rtf", "rtf", "Café Paris", {"title": "Letter"}, absent=("\\par", "fonttbl")),
    ]
    makers: list[tuple[str, Any, Sample]] = [
        (
            "report.docx",
            _docx,
            Sample(
                "report.docx",
                "docx",
                "Marie Curie was born",
                {"title": "Curie report", "authors": ["Ada Lovelace"]},
            ),
        ),
        (
            "review.pptx",
            _pptx,
            Sample(
                "review.pptx",
                "pptx",
                "Growth continues in Lyon",
                {"title": "Quarterly review", "page_count": 2},
            ),
        ),
        (
            "cities.xlsx",
            _xlsx,
            Sample(
                "cities.xlsx",
                "xlsx",
                "Warsaw | Poland",
                {"authors": ["Grace Hopper"], "page_count": 2},
            ),
        ),
        ("notes.odt", _odt, Sample("notes.odt", "odt", "Marie Curie was born", {})),
        (
            "life.epub",
            _epub,
            Sample(
                "life.epub",
                "epub",
                "Marie Curie was born",
                {"title": "Curie, a life", "authors": ["Eve Curie"]},
            ),
        ),
        (
            "samples.eml",
            _eml,
            Sample(
                "samples.eml",
                "eml",
                "Marie Curie was born",
                {"title": "Samples from Joachimsthal", "authors": ["Pierre Curie"]},
                parts=2,
            ),
        ),
        ("letters.mbox", _mbox, Sample("letters.mbox", "eml", "Letter 2.", {"page_count": 2})),
        (
            "photo.jpg",
            _jpeg,
            Sample(
                "photo.jpg",
                "jpeg",
                None,
                {"width": 64, "height": 48, "software": "Thunderline TL-1"},
            ),
        ),
        (
            "song.wav",
            _wav,
            Sample(
                "song.wav",
                "wav",
                None,
                {"title": "Radium song", "authors": ["The Curies"], "duration_s": 2.0},
            ),
        ),
        (
            "curie.ttf",
            _font,
            Sample("curie.ttf", "ttf", None, {"title": "Curie Sans", "authors": ["Eve Curie"]}),
        ),
        ("curie.pem", _cert, Sample("curie.pem", "pem", None, {"title": "curie.example.org"})),
        ("scan.pdf", _scan_pdf, Sample("scan.pdf", "pdf", None, {"page_count": 1})),
    ]
    for name, maker, sample in makers:
        maker(folder / name)
        samples.append(sample)
    return samples


# ---- containers -----------------------------------------------------------------------------
def ar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A Unix ``ar`` archive (the format of .deb packages), common format with ``/`` names."""
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in members:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}".encode() + b"`\n"
        out.write(header)
        out.write(data)
        if len(data) % 2:
            out.write(b"\n")
    return out.getvalue()


def tar_bytes(members: list[tuple[str, bytes]], compression: str = "") -> bytes:
    """A tar archive (``compression``: ``""``, ``gz``, ``bz2``, ``xz``, or ``zst``)."""
    buffer = io.BytesIO()
    mode = "w" if compression in ("", "zst") else f"w:{compression}"
    with tarfile.open(fileobj=buffer, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    if compression == "zst":
        import zstandard

        return bytes(zstandard.ZstdCompressor().compress(raw))
    return raw


def deb_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A Debian package: ar of ``debian-binary``, ``control.tar.xz``, ``data.tar.xz``."""
    control = tar_bytes([("./control", b"Package: curie\nVersion: 1.0\n")], "xz")
    data = tar_bytes(members, "xz")
    return ar_bytes(
        [("debian-binary", b"2.0\n"), ("control.tar.xz", control), ("data.tar.xz", data)]
    )


__all__ = ["PROSE", "Sample", "ar_bytes", "build_corpus", "deb_bytes", "tar_bytes"]
