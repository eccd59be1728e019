"""Text decoding, limits, HTML, RTF and PDF readers (moved from the former nlp/extract.py)."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from thunderline.extract.base import ExtractContext, read_head
from thunderline.extract.errors import ExtractionError
from thunderline.extract.formats.pdf import extract_pdf_pdfium, extract_pdf_pypdf, pdf_date
from thunderline.extract.formats.text import (
    cap_text,
    decode_text,
    extract_html,
    extract_plain,
    extract_rtf,
    rtf_to_text,
)
from thunderline.extract.registry import NONE, extractor_for


@pytest.mark.parametrize(
    ("label", "group", "is_text", "name"),
    [
        ("pdf", "document", False, "pdf"),
        ("html", "code", True, "html"),
        ("rtf", "text", True, "rtf"),
        ("txt", "text", True, "plain"),
        ("markdown", "text", True, "markdown"),
        ("python", "code", True, "code"),
        ("yaml", "code", True, "config"),
        ("somethingnew", "text", True, "plain"),
        ("pebin", "executable", False, "none"),
    ],
)
def test_extractor_for(label: str, group: str, is_text: bool, name: str) -> None:
    assert extractor_for(label, group, is_text).name == name
    assert (extractor_for(label, group, is_text) is NONE) == (name == "none")


@pytest.mark.parametrize(
    ("raw", "text", "encoding"),
    [
        ("Café français".encode(), "Café français", "utf-8"),
        (codecs.BOM_UTF8 + "Café".encode(), "Café", "utf-8-sig"),
        ("Hello".encode("utf-16"), "Hello", "utf-16"),
        ("Café français".encode("latin-1"), "Café français", None),
        ("Привет мир, как дела".encode("cp1251"), "Привет мир, как дела", "cp1251"),
        (b"Caf\xc3\xa9 \xff\xfe ok", "Café \ufffd\ufffd ok", "utf-8"),
    ],
)
def test_decode_text(raw: bytes, text: str, encoding: str | None) -> None:
    got, used = decode_text(raw)
    assert got == text
    if encoding is not None:
        assert used == encoding


def test_cap_text_cuts_on_a_character_boundary() -> None:
    text = "é" * 10  # 20 bytes of UTF-8
    assert cap_text(text, 100) == (text, False)
    cut, truncated = cap_text(text, 7)
    assert truncated and cut == "é" * 3


def _file(tmp_path: Path, data: bytes, name: str = "f") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_plain_text_is_limited(tmp_path: Path) -> None:
    got = extract_plain(
        _file(tmp_path, b"a" * 5000), ExtractContext(label="txt", max_text_bytes=1000)
    )
    assert got.truncated and len(got.text) == 1000 and got.bytes_in == 1000
    assert got.encoding == "utf-8" and got.method == "plain"


def test_html_drops_scripts_and_keeps_headings(tmp_path: Path) -> None:
    html = (
        b"<html><head><title>Report</title><style>p{color:red}</style></head><body>"
        b"<h1>Title</h1><p>First <b>bold</b> para.</p><script>alert('x')</script><div>Second</div>"
        b"<ul><li>one</li><li>two</li></ul></body></html>"
    )
    got = extract_html(_file(tmp_path, html), ExtractContext(label="html"))
    assert got.text == "Title\nFirst bold para.\nSecond\none\ntwo"
    assert got.metadata.title == "Report"
    assert [(h.level, h.text, h.start) for h in got.headings] == [(1, "Title", 0)]


def test_rtf_text_escapes_and_skipped_destinations(tmp_path: Path) -> None:
    rtf = (
        r"{\rtf1\ansi\ansicpg1252{\fonttbl{\f0 Arial;}}{\*\generator Writer;}"
        r"\f0 Caf\'e9 in M\u252?nchen\par Second line\tab end\par}"
    )
    assert rtf_to_text(rtf) == "Café in München\nSecond line\tend"
    with pytest.raises(ExtractionError) as caught:
        extract_rtf(_file(tmp_path, b"plain words"), ExtractContext(label="rtf"))
    assert caught.value.reason == "extraction"


def test_rtf_from_a_real_file(peer_data: Path) -> None:
    got = extract_rtf(peer_data / "basic/rtf/doc.rtf", ExtractContext(label="rtf"))
    assert got.text.splitlines()[0] == "Hello world"


@pytest.mark.parametrize("reader", [extract_pdf_pdfium, extract_pdf_pypdf])
def test_pdf_real_file_and_broken_file(peer_data: Path, tmp_path: Path, reader: object) -> None:
    run = reader  # type: ignore[assignment]
    got = run(peer_data / "basic/pdf/magika_test.pdf", ExtractContext(label="pdf"))  # type: ignore[operator]
    assert got.metadata.page_count == 1 and "Magika" in got.text
    several = run(  # type: ignore[operator]
        peer_data / "basic/pdf/magika_test_pptx.pdf", ExtractContext(label="pdf", max_text_bytes=20)
    )
    assert several.truncated and len(several.text.encode()) <= 20
    with pytest.raises(ExtractionError):
        run(_file(tmp_path, b"%PDF-1.4\nnot really"), ExtractContext(label="pdf"))  # type: ignore[operator]


def test_pdf_dates() -> None:
    when = pdf_date("D:20240131120000+01'00'")
    assert when is not None and when.isoformat() == "2024-01-31T12:00:00+01:00"
    assert pdf_date("garbage") is None


def test_read_head_reads_only_what_is_needed(tmp_path: Path) -> None:
    path = _file(tmp_path, b"z" * 100_000)
    data, longer = read_head(path, 1000)
    assert len(data) == 1000 and longer


@pytest.mark.parametrize(("size", "budget"), [(0, 10), (5, 10), (10, 10), (11, 10)])
def test_read_head_at_the_budget_edges(tmp_path: Path, size: int, budget: int) -> None:
    path = _file(tmp_path, bytes(range(size)))
    data, longer = read_head(path, budget)
    assert data == bytes(range(min(size, budget)))
    assert longer == (size > budget)
