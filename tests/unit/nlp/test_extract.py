"""Text extraction: encodings, limits, HTML, PDF, RTF, typed errors."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from thunderline.nlp.errors import ExtractionError
from thunderline.nlp.extract import (
    cap_text,
    decode_text,
    extract_text,
    method_for,
    read_head,
    rtf_to_text,
)


@pytest.mark.parametrize(
    ("label", "mime", "method"),
    [
        ("pdf", None, "pdf"),
        (None, "application/pdf", "pdf"),
        ("html", "text/html", "html"),
        ("rtf", None, "rtf"),
        ("txt", "text/plain", "plain"),
        ("markdown", None, "plain"),
        (None, None, "plain"),
    ],
)
def test_method_for(label: str | None, mime: str | None, method: str) -> None:
    assert method_for(label, mime) == method


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


def test_plain_text_is_limited() -> None:
    got = extract_text(b"a" * 5000, "plain", 1000)
    assert got.truncated and len(got.text) == 1000 and got.bytes_in == 1000
    assert got.info() == {
        "method": "plain",
        "encoding": "utf-8",
        "truncated": True,
        "bytes_in": 1000,
        "chars": 1000,
    }


def test_html_drops_scripts_and_breaks_blocks() -> None:
    html = (
        b"<html><head><title>Report</title><style>p{color:red}</style></head><body>"
        b"<p>First <b>bold</b> para.</p><script>alert('x')</script><div>Second</div>"
        b"<ul><li>one</li><li>two</li></ul></body></html>"
    )
    got = extract_text(html, "html", 10_000)
    assert got.text == "Report\nFirst bold para.\nSecond\none\ntwo"
    assert got.method == "html"


def test_rtf_text_escapes_and_skipped_destinations() -> None:
    rtf = (
        r"{\rtf1\ansi\ansicpg1252{\fonttbl{\f0 Arial;}}{\*\generator Writer;}"
        r"\f0 Caf\'e9 in M\u252?nchen\par Second line\tab end\par}"
    )
    assert rtf_to_text(rtf) == "Café in München\nSecond line\tend"


def test_rtf_from_a_real_file(peer_data: Path) -> None:
    got = extract_text((peer_data / "basic/rtf/doc.rtf").read_bytes(), "rtf", 10_000)
    assert got.text.splitlines()[0] == "Hello world"
    with pytest.raises(ExtractionError) as caught:
        extract_text(b"plain words", "rtf", 100)
    assert caught.value.reason == "extraction"


def test_pdf_real_file_and_broken_file(peer_data: Path) -> None:
    got = extract_text((peer_data / "basic/pdf/magika_test.pdf").read_bytes(), "pdf", 10_000)
    assert got.pages == 1 and "Magika" in got.text and got.encoding is None
    several = extract_text((peer_data / "basic/pdf/magika_test_pptx.pdf").read_bytes(), "pdf", 20)
    assert several.truncated and len(several.text.encode()) <= 20
    with pytest.raises(ExtractionError, match="cannot read PDF"):
        extract_text(b"%PDF-1.4\nnot really", "pdf", 1000)


def test_read_head_reads_only_what_is_needed(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"z" * 100_000)
    assert len(read_head(path, "plain", 1000)) == 1001
    assert len(read_head(path, "html", 1000)) == 8001
    assert len(read_head(path, "pdf", 1000)) == 100_000
