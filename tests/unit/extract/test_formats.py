"""Every extractor on the multi-format corpus made by each format's own tools."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from thunderline.extract.base import ExtractContext
from thunderline.extract.registry import extractor_for
from thunderline.extract.result import ExtractResult, parse_result, summarize
from thunderline.extract.worker import _Channel
from thunderline.testing.corpus import Sample, build_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Sample]]:
    folder = tmp_path_factory.mktemp("corpus")
    samples = build_corpus(folder)
    return folder, {s.name: s for s in samples}


def _run(folder: Path, sample: Sample, tmp_path: Path) -> ExtractResult:
    extractor = extractor_for(sample.label, "", True)
    ctx = ExtractContext(label=sample.label, parts_dir=tmp_path, max_parts=10)
    return extractor.run(folder / sample.name, ctx)


NAMES = [
    "notes.md",
    "guide.rst",
    "paper.tex",
    "page.html",
    "film.srt",
    "lectures.ics",
    "cities.csv",
    "settings.ini",
    "letter.rtf",
    "report.docx",
    "review.pptx",
    "cities.xlsx",
    "notes.odt",
    "life.epub",
    "samples.eml",
    "letters.mbox",
    "photo.jpg",
    "song.wav",
    "curie.ttf",
    "curie.pem",
    "scan.pdf",
]


@pytest.mark.parametrize("name", NAMES)
def test_extractor_yields_text_and_metadata(
    corpus: tuple[Path, dict[str, Sample]], name: str, tmp_path: Path
) -> None:
    folder, samples = corpus
    sample = samples[name]
    found = _run(folder, sample, tmp_path)
    if sample.phrase is not None:
        assert sample.phrase in found.text, found.text[:300]
        assert found.content != "none"
    else:
        assert found.text.strip() == ""
    for marker in sample.absent:
        assert marker not in found.text, (marker, found.text[:300])
    for key, expected in sample.meta.items():
        assert getattr(found.metadata, key) == expected, (key, found.metadata)
    assert len(found.parts) == sample.parts
    assert found.library_version and found.library_version != "unknown"


@pytest.mark.parametrize("name", NAMES)
def test_result_is_built_valid_and_its_summary_is_the_same_through_the_worker_line(
    corpus: tuple[Path, dict[str, Sample]], name: str, tmp_path: Path
) -> None:
    """The worker builds its result unvalidated: every value must already fit its type
    (strict: no coercion needed), and the summary of the parsed worker line must be the
    summary of the result itself, byte for byte."""
    folder, samples = corpus
    found = _run(folder, samples[name], tmp_path)
    assert TypeAdapter(ExtractResult).validate_python(found, strict=True) == found
    stream = io.StringIO()
    _Channel(stream).send_result("job", found)
    back = parse_result(json.loads(stream.getvalue())["result"])
    assert back == found
    parts = [dataclasses.replace(p, spool=None) for p in found.parts]
    assert (
        summarize(back, None, parts, 1.0).model_dump_json()
        == summarize(found, None, parts, 1.0).model_dump_json()
    )


def test_every_sample_is_tested(tmp_path: Path) -> None:
    assert sorted(s.name for s in build_corpus(tmp_path)) == sorted(NAMES)


def test_markdown_headings_are_structure_not_text_syntax(
    corpus: tuple[Path, dict[str, Sample]], tmp_path: Path
) -> None:
    folder, samples = corpus
    found = _run(folder, samples["notes.md"], tmp_path)
    assert [(h.level, h.text) for h in found.headings] == [(1, "Contents"), (2, "Radium")]
    for heading in found.headings:
        assert found.text[heading.start : heading.start + len(heading.text)] == heading.text
    assert found.text.startswith("Contents\n")


def test_slides_and_sheets_are_segments(
    corpus: tuple[Path, dict[str, Sample]], tmp_path: Path
) -> None:
    folder, samples = corpus
    deck = _run(folder, samples["review.pptx"], tmp_path)
    assert [(s.kind, s.index, s.title) for s in deck.segments] == [
        ("slide", 0, "Results"),
        ("slide", 1, "Outlook"),
    ]
    assert "Lyon" in deck.text[deck.segments[1].start : deck.segments[1].end]
    assert "Lyon" not in deck.text[deck.segments[0].start : deck.segments[0].end]
    book = _run(folder, samples["cities.xlsx"], tmp_path)
    assert [s.title for s in book.segments] == ["Cities", "Totals"]
    assert book.text[book.segments[1].start : book.segments[1].end] == "Total | 2"


def test_email_attachments_are_parts_written_to_the_spool(
    corpus: tuple[Path, dict[str, Sample]], tmp_path: Path
) -> None:
    folder, samples = corpus
    found = _run(folder, samples["samples.eml"], tmp_path)
    names = [p.name for p in found.parts]
    assert names == ["order.txt", "report.docx"]
    first = found.parts[0]
    assert first.spool is not None
    assert (tmp_path / first.spool).read_bytes() == b"Pitchblende residue, 100 kg.\n"
    assert found.raw["to"] == "marie@example.org"


def test_photo_gps_is_decoded_to_degrees(
    corpus: tuple[Path, dict[str, Sample]], tmp_path: Path
) -> None:
    folder, samples = corpus
    gps = _run(folder, samples["photo.jpg"], tmp_path).metadata.gps
    assert gps is not None
    assert gps.lat == pytest.approx(48 + 51 / 60 + 29 / 3600)
    assert gps.lon == pytest.approx(2 + 17 / 60 + 40 / 3600)


def test_pdf_pages_are_segments_and_scans_are_flagged(
    corpus: tuple[Path, dict[str, Sample]], tmp_path: Path
) -> None:
    repo = Path(__file__).resolve().parents[3]
    spec = repo / "examples" / "shared-mime-info-spec.pdf"
    ctx = ExtractContext(label="pdf")
    found = extractor_for("pdf").run(spec, ctx)
    assert found.metadata.page_count == len(found.segments) > 1
    assert "Shared MIME-info Database" in found.text
    assert all(s.kind == "page" for s in found.segments)
    folder, samples = corpus
    scan = _run(folder, samples["scan.pdf"], tmp_path)
    assert scan.raw["pages_without_text"] == "1"
    assert any("without a text layer" in w for w in scan.warnings)


def test_objects_embedded_in_docx_and_pptx_become_parts(tmp_path: Path) -> None:
    """An embedded workbook (a package part under */embeddings/, related from the document)
    comes out as an embedded part with its bytes, for python-docx and python-pptx alike."""
    import docx
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.packuri import PackURI as DocxUri
    from docx.opc.part import Part as DocxPart
    from pptx import Presentation
    from pptx.opc.package import Part as PptxPart
    from pptx.opc.packuri import PackURI as PptxUri

    blob = b"PK\x03\x04 an embedded workbook"
    xlsx_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    document = docx.Document()
    document.add_paragraph("Marie Curie was born in Warsaw.")
    embedded = DocxPart(DocxUri("/word/embeddings/Sheet1.xlsx"), xlsx_type, blob, None)
    document.part.relate_to(embedded, RT.PACKAGE)
    document.save(str(tmp_path / "with-object.docx"))
    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    part = PptxPart(PptxUri("/ppt/embeddings/Sheet2.xlsx"), xlsx_type, deck.part.package, blob)
    slide.part.relate_to(part, RT.PACKAGE)
    deck.save(str(tmp_path / "with-object.pptx"))
    for name, label in (("with-object.docx", "docx"), ("with-object.pptx", "pptx")):
        spool = tmp_path / f"spool-{label}"
        spool.mkdir()
        ctx = ExtractContext(label=label, parts_dir=spool, max_parts=10)
        found = extractor_for(label, "", True).run(tmp_path / name, ctx)
        assert [(p.name, p.kind, p.size) for p in found.parts] == [
            (f"Sheet{1 if label == 'docx' else 2}.xlsx", "embedded", len(blob))
        ]
        assert (spool / str(found.parts[0].spool)).read_bytes() == blob
