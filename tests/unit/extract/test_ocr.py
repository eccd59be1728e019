"""The OCR post-processing: spaces from the CTC output, lines from boxes, Tesseract's TSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thunderline.extract import ocr
from thunderline.extract.ocr import OcrWord, _Box, _SpacedDecode


class _Decode:
    """The part of RapidOCR's CTCLabelDecode that _SpacedDecode reads: its alphabet."""

    character = ["blank", "a", "b", "c", " "]

    def __call__(self, preds: object, return_word_box: bool = False, **kwargs: object) -> object:
        raise AssertionError("the original decode is only used for word boxes")


def _frames(path: list[tuple[int, float]], space: dict[int, float]) -> np.ndarray:
    """Probabilities [frames, 5]: each frame's best symbol and score, and a space level."""
    probs = np.zeros((len(path), 5), dtype=np.float32)
    for n, (symbol, score) in enumerate(path):
        probs[n, 4] = space.get(n, 0.0)
        probs[n, symbol] = score
        probs[n, 0 if symbol else 1] += 1.0 - probs[n].sum()
    return probs


@pytest.mark.parametrize(
    ("level", "expected"), [(0.0001, "abc"), (ocr.SPACE_PROBABILITY, "ab c"), (0.2, "ab c")]
)
def test_a_space_goes_where_its_probability_between_two_characters_is_high(
    level: float, expected: str
) -> None:
    # a . b . . c   (blank frames between; the space level sits on frame 4, between b and c)
    probs = _frames([(1, 0.9), (0, 0.9), (2, 0.8), (0, 0.9), (0, 0.9), (3, 0.7)], {4: level})
    text, conf, words = _SpacedDecode(_Decode()).decode_one(probs)
    assert text == expected
    assert conf == pytest.approx((0.9 + 0.8 + 0.7) / 3, abs=1e-6)
    assert len(words) == len(expected.split())


def test_a_space_the_model_read_is_kept_and_repeats_collapse() -> None:
    probs = _frames([(1, 0.9), (1, 0.9), (4, 0.6), (2, 0.8), (0, 0.9), (2, 0.8)], {})
    text, _conf, words = _SpacedDecode(_Decode()).decode_one(probs)
    assert text == "a bb"
    assert words == [pytest.approx(0.9), pytest.approx(0.8)]


def _box(
    text: str, left: float, top: float, right: float, bottom: float, conf: float = 0.9
) -> _Box:
    return _Box((OcrWord(text, conf),), left, top, right, bottom)


def test_boxes_become_lines_left_to_right_top_to_bottom() -> None:
    boxes = [
        _box("world", 300, 102, 420, 130),
        _box("second", 20, 160, 160, 190, 0.5),
        _box("hello", 20, 100, 140, 128),
        _box("again", 200, 158, 300, 191, 0.7),
    ]
    lines = ocr.build_lines(boxes)
    assert [ln.text for ln in lines] == ["hello world", "second again"]
    assert lines[0].confidence == pytest.approx(0.9)
    assert lines[1].confidence == pytest.approx((6 * 0.5 + 5 * 0.7) / 11)
    assert lines[1].low_confidence and not lines[0].low_confidence
    assert (lines[0].left, lines[0].top, lines[0].bottom) == (20, 100, 130)


TSV = (
    "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
    "1\t1\t0\t0\t0\t0\t0\t0\t900\t300\t-1\t\n"
    "4\t1\t1\t1\t1\t0\t24\t40\t500\t30\t-1\t\n"
    "5\t1\t1\t1\t1\t1\t24\t40\t90\t30\t96.5\tMarie\n"
    "5\t1\t1\t1\t1\t2\t124\t40\t90\t30\t91.0\tCurie\n"
    "5\t1\t2\t1\t1\t1\t600\t42\t90\t30\t42.0\tcolumn\n"
    "5\t1\t1\t1\t2\t1\t24\t90\t90\t30\t88.0\tShe\n"
    "5\t1\t1\t1\t2\t2\t124\t90\t20\t30\t95.0\t \n"
)


def test_tesseract_tsv_lines_follow_its_own_line_ids() -> None:
    lines = ocr.tesseract_lines(TSV)
    assert [ln.text for ln in lines] == ["Marie Curie", "column", "She"]
    assert [w.confidence for w in lines[0].words] == [0.965, 0.91]
    assert lines[0].words[1].left == 124 and lines[0].words[1].right == 214
    assert lines[1].low_confidence
    summary = ocr.info(lines, "tesseract")
    assert (summary.lines, summary.words, summary.low_confidence_lines) == (3, 4, 1)
    assert summary.low_confidence_words == 1
    merged = ocr.merge([summary, summary])
    assert merged is not None and (merged.lines, merged.words) == (6, 8)


def test_small_images_are_not_read() -> None:
    from PIL import Image

    assert ocr.recognise(Image.new("RGB", (40, 40), "white"), lambda: None) == []


PICTURE_TSV = TSV + (
    # a block Tesseract took for a picture: listed in the TSV, left out of its plain text
    "5\t1\t3\t1\t1\t1\t700\t200\t40\t30\t31.0\t~=\n5\t1\t3\t1\t1\t2\t750\t200\t40\t30\t12.0\tWW\n"
)


def test_only_the_lines_tesseracts_text_renderer_printed_are_kept() -> None:
    text = "Marie Curie\ncolumn\n\nShe\n\n\f"
    lines = ocr.tesseract_lines(PICTURE_TSV, text)
    assert [ln.text for ln in lines] == ["Marie Curie", "column", "She"]
    assert [w.confidence for w in lines[0].words] == [0.965, 0.91]  # confidences kept
    assert lines[1].low_confidence  # printed, so kept, and marked
    # without the plain text every TSV line is kept
    assert [ln.text for ln in ocr.tesseract_lines(PICTURE_TSV)][-1] == "~= WW"


def test_lines_not_matching_the_plain_text_keep_every_tsv_line() -> None:
    """Should the two renderers disagree (never seen), no text is dropped."""
    lines = ocr.tesseract_lines(PICTURE_TSV, "Marie Curie\nsomething else\n")
    assert [ln.text for ln in lines] == ["Marie Curie", "column", "She", "~= WW"]


def test_a_word_without_confidence_never_enters_the_text() -> None:
    tsv = TSV + "5\t1\t1\t1\t2\t3\t150\t90\t20\t30\t-1\tx\n"
    lines = ocr.tesseract_lines(tsv, "Marie Curie\ncolumn\nShe x\n")
    assert [ln.text for ln in lines] == ["Marie Curie", "column", "She"]


def test_image_dpi_is_read_as_leptonica_reads_it(tmp_path: Path) -> None:
    from PIL import Image

    page = Image.new("RGB", (200, 100), "white")
    page.save(tmp_path / "a.jpg", dpi=(300, 300))
    page.save(tmp_path / "b.png", dpi=(150, 150))
    page.save(tmp_path / "c.png")
    exif = Image.Exif()
    exif[0x011A] = exif[0x011B] = 200.0  # XResolution, YResolution; no JFIF density
    exif[0x0128] = 2  # inches
    page.save(tmp_path / "d.jpg", exif=exif)
    with Image.open(tmp_path / "a.jpg") as a, Image.open(tmp_path / "b.png") as b:
        assert ocr.image_dpi(a) == 300
        assert round(ocr.image_dpi(b) or 0) == 150
    with Image.open(tmp_path / "c.png") as c, Image.open(tmp_path / "d.jpg") as d:
        assert ocr.image_dpi(c) is None
        assert d.info.get("dpi") == (200, 200)  # Pillow's EXIF fallback...
        assert ocr.image_dpi(d) is None  # ...which Leptonica does not read


@pytest.mark.parametrize(
    ("dpi", "flag"), [(None, None), (72.0, "72"), (299.6, "300"), (30.0, None), (3000.0, None)]
)
def test_the_resolution_goes_to_tesseract_only_where_it_would_trust_it(
    dpi: float | None, flag: str | None
) -> None:
    command = ocr.tesseract_command("page.tif", "eng", output="/tmp/out", dpi=dpi)
    assert command[1:7] == ["page.tif", "/tmp/out", "-l", "eng", "--psm", "3"]
    assert ("--dpi" in command) == (flag is not None)
    if flag is not None:
        assert command[command.index("--dpi") + 1] == flag
    assert command[-4:] == ["-c", "tessedit_create_txt=1", "-c", "tessedit_create_tsv=1"]
    assert ocr.tesseract_command("p.png")[-1] == "tsv"
