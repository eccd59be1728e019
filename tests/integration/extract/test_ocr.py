"""OCR in the extraction worker: an image of text and a scanned PDF page (rendered here with
Pillow's own scalable font), each line with its confidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from thunderline.extract.pool import ExtractPool, Job, PoolConfig

pytestmark = pytest.mark.timeout(600)

LINES = ["Marie Curie was born in Warsaw in 1867.", "She received the Nobel Prize in Physics."]


def _page(path: Path, fmt: str) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=28)
    image = Image.new("RGB", (900, 220), "white")
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(LINES):
        draw.text((24, 40 + 80 * n), line, fill="black", font=font)
    image.save(path, fmt)
    return path


def _squash(text: str) -> str:
    return "".join(text.split()).lower()


async def test_image_and_scanned_pdf_are_read_by_ocr(tmp_path: Path) -> None:
    png = _page(tmp_path / "page.png", "PNG")
    scan = _page(tmp_path / "scan.pdf", "PDF")
    pool = ExtractPool(PoolConfig(workers=1, timeouts={"ocr": 600.0}, progress_timeout_s=60.0))
    try:
        image = await pool.extract(
            Job(id="1", path=str(png), extractor="image", kind="ocr", label="png", ocr=True)
        )
        pdf = await pool.extract(
            Job(id="2", path=str(scan), extractor="pdf", kind="ocr", label="pdf", ocr=True)
        )
        plain = await pool.extract(
            Job(id="3", path=str(png), extractor="image", kind="image", label="png", ocr=False)
        )
    finally:
        await pool.close()
    for found in (image, pdf):
        assert found.ocr is not None and found.ocr.engine == "rapidocr"
        assert found.ocr.lines >= 2 and found.ocr.mean_confidence > 0.8
        for line in LINES:  # PP-OCR sometimes drops a space: compare without them
            assert _squash(line) in _squash(found.text), found.text
    assert image.metadata.width == 900 and image.content == "prose"
    assert pdf.segments[0].kind == "page"
    assert not any("without a text layer" in w for w in pdf.warnings)
    assert plain.text == "" and plain.ocr is None
