"""Content-Disposition for any file name: printable ASCII only, exact name in filename*."""

from __future__ import annotations

import os
from urllib.parse import unquote

import pytest

from thunderline.api.disposition import ascii_fallback, content_disposition

NAMES = [
    "report.pdf",
    'quote"d;name.txt',
    "crlf\r\nSet-Cookie: x=1.txt",
    "IDLE crédits.txt",
    "日本語.md",
    os.fsdecode(b"bad-\xff\xfe.bin"),
    "../../etc/passwd",
    "C:\\Windows\\evil.exe",
    "tab\there",
    "",
    "%41%42.txt",
]


@pytest.mark.parametrize("name", NAMES)
def test_header_is_printable_ascii_and_single_line(name: str) -> None:
    header = content_disposition(name)
    assert all(0x20 <= ord(c) < 0x7F for c in header), header
    assert header.startswith("attachment;")
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert "/" not in fallback and "\\" not in fallback and ";" not in fallback


def test_exact_name_survives_in_filename_star() -> None:
    header = content_disposition("IDLE crédits.txt")
    encoded = header.split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded) == "IDLE crédits.txt"
    assert ascii_fallback("IDLE crédits.txt") == "IDLE cr_dits.txt"


def test_undecodable_bytes_become_replacement_characters() -> None:
    header = content_disposition(os.fsdecode(b"bad-\xff.bin"))
    assert unquote(header.split("filename*=UTF-8''", 1)[1]) == "bad-\ufffd.bin"


def test_path_parts_are_dropped() -> None:
    assert unquote(content_disposition("a/b/c.txt").split("''", 1)[1]) == "c.txt"
    assert content_disposition(None) == 'attachment; filename="payload"'
