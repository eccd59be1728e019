"""Objects embedded in office files become embedded parts (issue 18 item 4), on real files.

The fixtures (tests/fixtures/legacy/*-with-*) are documents with an embedded object saved by
LibreOffice 7.4 in each format (scripts/make_legacy_fixtures.py --embedded): a memo with a
spreadsheet in it (.odt, .doc, .docx), a budget workbook with a document in it (.ods, .xls), a
talk with a table in it (.odp, .ppt, .pptx). Each embedded object comes out as a file of its
own that Magika names and its extractor reads; the job's limits (count, bytes, expansion
ratio) apply.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import olefile
import pytest

from thunderline.extract import cfb
from thunderline.extract.base import ExtractContext
from thunderline.extract.registry import extractor_for
from thunderline.extract.result import ExtractResult

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "legacy"
REVENUE = "Q1 | Lisbon | 125000"
MINUTES = "Board minutes: the budget for Coimbra was approved on 12 March."
PILOT = "Braga | 412"

#: fixture -> (its label, the child's Magika label, text in the host, text in the child)
CASES = {
    "memo-with-sheet.doc": ("doc", "xls", "Quarterly memo from Helena Duarte.", REVENUE),
    "budget-with-minutes.xls": ("xls", "doc", "Budget 2025 approved by the board", MINUTES),
    "talk-with-table.ppt": ("ppt", "xls", "Results of the Braga pilot", PILOT),
    "memo-with-sheet.odt": ("odt", "ods", "Quarterly memo from Helena Duarte.", REVENUE),
    "budget-with-minutes.ods": ("ods", "odt", "Budget 2025 approved by the board", MINUTES),
    "talk-with-table.odp": ("odp", "ods", "Results of the Braga pilot", PILOT),
    "memo-with-sheet.docx": ("docx", "xlsx", "Quarterly memo from Helena Duarte.", REVENUE),
    "talk-with-table.pptx": ("pptx", "xlsx", "Results of the Braga pilot", PILOT),
}


def _run(path: Path, label: str, spool: Path, **limits: float) -> ExtractResult:
    spool.mkdir(exist_ok=True)
    ctx = ExtractContext(label=label, parts_dir=spool, **limits)  # type: ignore[arg-type]
    return extractor_for(label).run(path, ctx)


@pytest.fixture(scope="module")
def magika() -> object:
    from magika import Magika

    return Magika()


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_embedded_object_is_a_file_of_its_own(
    name: str, tmp_path: Path, magika: object
) -> None:
    label, child_label, host_text, child_text = CASES[name]
    found = _run(FIXTURES / name, label, tmp_path / "parts")
    assert host_text in found.text
    assert child_text not in found.text  # the object's text is the child's, not the host's
    assert found.warnings == []
    [part] = found.parts
    assert part.kind == "embedded" and part.spool is not None
    assert part.name.endswith("." + child_label)
    data = (tmp_path / "parts" / part.spool).read_bytes()
    assert part.size == len(data)
    named = magika.identify_bytes(data).output.label  # type: ignore[attr-defined]
    assert named == child_label  # what the pipeline routes the child by
    child = _run(tmp_path / "parts" / part.spool, child_label, tmp_path / "grandchildren")
    assert child_text in child.text
    assert child.parts == []


def test_legacy_hosts_count_their_objects_in_the_raw_metadata(tmp_path: Path) -> None:
    for name in ("memo-with-sheet.doc", "budget-with-minutes.xls", "talk-with-table.ppt"):
        label = CASES[name][0]
        found = _run(FIXTURES / name, label, tmp_path / label)
        assert found.raw["embedded_objects"] == "1", name


def test_an_embedded_workbook_keeps_its_storage_tree_and_class_id(tmp_path: Path) -> None:
    """The .doc's ObjectPool/_N storage becomes a compound file whose root is that storage:
    the same streams, byte for byte, and the same CLSID (Excel's)."""
    found = _run(FIXTURES / "memo-with-sheet.doc", "doc", tmp_path / "parts")
    [part] = found.parts
    host = olefile.OleFileIO(str(FIXTURES / "memo-with-sheet.doc"))
    child = olefile.OleFileIO(str(tmp_path / "parts" / str(part.spool)))
    try:
        [storage] = [
            e
            for e in host.listdir(streams=False, storages=True)
            if len(e) == 2 and e[0] == "ObjectPool"
        ]
        streams = [e[2:] for e in host.listdir() if e[:2] == storage]
        assert sorted(child.listdir()) == sorted(streams)
        for stream in streams:
            assert child.openstream(stream).read() == host.openstream(storage + stream).read()
        assert child.root.clsid == host.getclsid(storage) != ""
    finally:
        host.close()
        child.close()


def test_the_compound_file_writer_round_trips_large_and_nested_streams() -> None:
    """Over 109 FAT sectors (8 MB) the writer needs DIFAT sectors; small streams go to the
    mini stream; an empty stream and a nested storage survive."""
    big = bytes(range(256)) * (8 * 4096)
    tree = cfb.Node(
        "Root Entry",
        children=[
            cfb.Node("Big", data=big),
            cfb.Node("small", data=b"x" * 100),
            cfb.Node("Sub", children=[cfb.Node("A", data=b"a" * 5000), cfb.Node("B", data=b"")]),
        ],
    )
    data = cfb.write(tree)
    assert struct.unpack_from("<I", data, 72)[0] >= 1  # DIFAT sectors were needed
    ole = olefile.OleFileIO(data)
    try:
        assert sorted(ole.listdir()) == [["Big"], ["Sub", "A"], ["Sub", "B"], ["small"]]
        assert ole.openstream("Big").read() == big
        assert ole.openstream("small").read() == b"x" * 100
        assert ole.openstream("Sub/A").read() == b"a" * 5000
        assert ole.openstream("Sub/B").read() == b""
    finally:
        ole.close()


def test_the_count_and_byte_limits_apply(tmp_path: Path) -> None:
    for name in ("memo-with-sheet.doc", "talk-with-table.ppt", "memo-with-sheet.odt"):
        label = CASES[name][0]
        none = _run(FIXTURES / name, label, tmp_path / f"{label}-0", max_parts=0)
        assert none.parts == [] and any("more than 0 embedded parts" in w for w in none.warnings)
        small = _run(FIXTURES / name, label, tmp_path / f"{label}-b", max_part_bytes=500)
        assert small.parts == [], name
        assert any("byte budget" in w or "exceed 500 bytes" in w for w in small.warnings), (
            name,
            small.warnings,
        )
        assert CASES[name][2] in small.text  # the host's own text is kept


def _ppt_with_object_record(tmp_path: Path, record: bytes) -> Path:
    """talk-with-table.ppt with one more ExOleObjStg record appended to its document stream
    (rewritten through the compound file writer)."""
    ole = olefile.OleFileIO(str(FIXTURES / "talk-with-table.ppt"))
    try:
        tree = cfb.read_tree(ole, [], 1 << 30)
    finally:
        ole.close()
    stream = next(n for n in tree.children if n.name == "PowerPoint Document")
    stream.data = (stream.data or b"") + record
    path = tmp_path / "hostile.ppt"
    path.write_bytes(cfb.write(tree))
    return path


def test_a_compressed_object_past_the_expansion_ratio_is_refused(tmp_path: Path) -> None:
    payload = zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)  # 64 MB from ~64 KB: ~1000:1
    body = struct.pack("<I", 64 * 1024 * 1024) + payload
    record = struct.pack("<HHI", 0x0010, 0x1011, len(body)) + body  # instance 1: compressed
    found = _run(_ppt_with_object_record(tmp_path, record), "ppt", tmp_path / "parts")
    assert [p.name for p in found.parts] == ["object1.xls"]  # the real object still comes out
    assert any("ratio limit 100:1" in w and "object2" in w for w in found.warnings)
    assert "Results of the Braga pilot" in found.text


def test_a_compressed_object_that_lies_about_its_size_is_not_inflated_past_it(
    tmp_path: Path,
) -> None:
    payload = zlib.compress(b"\x00" * (8 * 1024 * 1024), 9)
    body = struct.pack("<I", 4096) + payload  # declares 4 KB, inflates to 8 MB
    record = struct.pack("<HHI", 0x0010, 0x1011, len(body)) + body
    found = _run(_ppt_with_object_record(tmp_path, record), "ppt", tmp_path / "parts")
    assert [p.name for p in found.parts] == ["object1.xls"]
    assert any("object2 inflates past its declared size" in w for w in found.warnings)


def test_a_packaged_file_comes_out_as_that_file(tmp_path: Path) -> None:
    """An OLE Packager object (``\\x01Ole10Native``) in a .doc's ObjectPool: the packaged file
    comes out under its own name. The host is memo-with-sheet.doc with its workbook storage
    turned into a package of a text file (rewritten through the compound file writer)."""
    ole = olefile.OleFileIO(str(FIXTURES / "memo-with-sheet.doc"))
    try:
        tree = cfb.read_tree(ole, [], 1 << 30)
    finally:
        ole.close()
    pool = next(n for n in tree.children if n.name == "ObjectPool")
    [obj] = pool.children
    text = b"Packaged notes: ship to Evora on Monday.\n"
    source = b"C:\\Users\\helena\\notes.txt\x00"
    native = (
        b"\x02\x00"
        + b"notes.txt\x00"
        + source
        + b"\x00\x00\x03\x00"
        + struct.pack("<I", len(source))
        + source
        + struct.pack("<I", len(text))
        + text
    )
    native = struct.pack("<I", len(native)) + native
    obj.children = [cfb.Node("\x01Ole10Native", data=native)]
    path = tmp_path / "packaged.doc"
    path.write_bytes(cfb.write(tree))
    found = _run(path, "doc", tmp_path / "parts")
    [part] = found.parts
    assert part.name == "notes.txt"
    assert (tmp_path / "parts" / str(part.spool)).read_bytes() == text


def test_a_host_magika_names_after_its_object_is_read_as_what_it_is(
    tmp_path: Path, magika: object
) -> None:
    """Magika names the memo (a Word file holding a workbook) ``xls`` and the budget (an Excel
    file holding a document) ``doc``: the extractor the label picks reads the root streams and
    hands the file to the right reader, with a warning."""
    for name, wrong, right in (
        ("memo-with-sheet.doc", "xls", "doc"),
        ("budget-with-minutes.xls", "doc", "xls"),
    ):
        found = magika.identify_path(FIXTURES / name).output.label  # type: ignore[attr-defined]
        assert found == wrong, (name, found)  # if Magika learns better, this test says so
        result = _run(FIXTURES / name, wrong, tmp_path / wrong)
        assert result.method == right
        assert CASES[name][2] in result.text and len(result.parts) == 1
        assert f"labelled {wrong!r}, but the compound file is a {right} document" in "".join(
            result.warnings
        )


def _package(text: bytes, label: str) -> bytes:
    """A compound file holding an OLE Packager object (``\\x01Ole10Native``) of ``text``."""
    source = f"C:\\Users\\helena\\{label}\x00".encode()
    native = (
        b"\x02\x00"
        + label.encode()
        + b"\x00"
        + source
        + b"\x00\x00\x03\x00"
        + struct.pack("<I", len(source))
        + source
        + struct.pack("<I", len(text))
        + text
    )
    native = struct.pack("<I", len(native)) + native
    return cfb.write(cfb.Node("Root Entry", children=[cfb.Node("\x01Ole10Native", data=native)]))


def test_an_ooxml_ole_object_is_unwrapped(tmp_path: Path) -> None:
    """A docx whose embedding is an ``oleObject1.bin`` compound file (what Word writes for a
    packaged file or a legacy workbook): the package comes out as its file, an embedded .xls
    under its own extension. The docx is memo-with-sheet.docx with its embedding replaced."""
    import zipfile

    def docx_with(blob: bytes, path: Path) -> Path:
        with (
            zipfile.ZipFile(FIXTURES / "memo-with-sheet.docx") as src,
            zipfile.ZipFile(path, "w") as out,
        ):
            for info in src.infolist():
                data = src.read(info)
                name = info.filename.replace("oleObject1.xlsx", "oleObject1.bin")
                if name == "word/embeddings/oleObject1.bin":
                    data = blob
                elif name in ("word/_rels/document.xml.rels", "[Content_Types].xml"):
                    data = data.replace(b"oleObject1.xlsx", b"oleObject1.bin")
                out.writestr(name, data)
        return path

    text = b"Packaged notes: ship to Evora on Monday.\n"
    packaged = docx_with(_package(text, "notes.txt"), tmp_path / "packaged.docx")
    found = _run(packaged, "docx", tmp_path / "p1")
    assert [p.name for p in found.parts] == ["notes.txt"]
    assert (tmp_path / "p1" / str(found.parts[0].spool)).read_bytes() == text

    workbook = (FIXTURES / "budget-with-minutes.xls").read_bytes()
    legacy = docx_with(workbook, tmp_path / "legacy.docx")
    found = _run(legacy, "docx", tmp_path / "p2")
    assert [p.name for p in found.parts] == ["oleObject1.xls"]
    assert (tmp_path / "p2" / str(found.parts[0].spool)).read_bytes() == workbook
