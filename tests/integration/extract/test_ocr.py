"""OCR in the extraction worker: an image of text and a scanned PDF page (rendered here with
Pillow's own scalable font), each line with its confidence, read by RapidOCR and by Tesseract.

The Tesseract tests need the ``tesseract`` binary (Debian ``tesseract-ocr`` +
``tesseract-ocr-eng``): without it they skip with the reason, except under
``TL_TEST_REQUIRE_SERVICES=1`` where its absence is a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import require_service

from thunderline.extract import ocr
from thunderline.extract.pool import ExtractPool, Job, PoolConfig

pytestmark = pytest.mark.timeout(600)

LINES = ["Marie Curie was born in Warsaw in 1867.", "She received the Nobel Prize in Physics."]


def _page(path: Path, fmt: str, size: int = 28) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    image = Image.new("RGB", (int(size * 32), int(size * 8)), "white")
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(LINES):
        draw.text((24, 40 + int(size * 2.8) * n), line, fill="black", font=font)
    image.save(path, fmt)
    return path


def _words(text: str) -> str:
    return " ".join(text.split())


def _cer(reference: str, hypothesis: str) -> float:
    """Character error rate (Levenshtein distance / reference length), spaces included."""
    ref, hyp = _words(reference), _words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, a in enumerate(ref, 1):
        current = [i]
        for j, b in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1] / max(len(ref), 1)


def _require(engine: str) -> None:
    if engine == "tesseract":

        def probe() -> None:
            problem = ocr.available("tesseract")
            if problem is not None:
                raise FileNotFoundError(problem)

        require_service("tesseract", "PATH", probe)


@pytest.mark.parametrize("engine", ["rapidocr", "tesseract"])
async def test_image_and_scanned_pdf_are_read_by_ocr(tmp_path: Path, engine: str) -> None:
    _require(engine)
    png = _page(tmp_path / "page.png", "PNG")
    scan = _page(tmp_path / "scan.pdf", "PDF")
    pool = ExtractPool(PoolConfig(workers=1, timeouts={"ocr": 600.0}, progress_timeout_s=60.0))

    def job(n: str, path: Path, extractor: str, on: bool) -> Job:
        kind = "ocr" if on else "image"
        return Job(
            id=n, path=str(path), extractor=extractor, kind=kind, label=extractor,
            ocr=on, ocr_engine=engine,
        )  # fmt: skip

    try:
        image = await pool.extract(job("1", png, "image", True))
        pdf = await pool.extract(job("2", scan, "pdf", True))
        plain = await pool.extract(job("3", png, "image", False))
    finally:
        await pool.close()
    for found in (image, pdf):
        assert found.ocr is not None and found.ocr.engine == engine
        assert found.ocr.version and found.ocr.version != "unknown"
        assert found.ocr.lines == 2 and found.ocr.mean_confidence > 0.8
        assert found.ocr.words == sum(len(line.split()) for line in LINES)
        # one text line per printed line, the words with the spaces between them (a space
        # left out or a letter misread is one error: at most one in each line here)
        read = found.text.strip().splitlines()
        assert len(read) == len(LINES), found.text
        for line, printed in zip(read, LINES, strict=True):
            assert _cer(printed, line) <= 1 / len(printed), (line, printed)
    assert image.metadata.width == 896 and image.content == "prose"
    assert pdf.segments[0].kind == "page"
    assert not any("without a text layer" in w for w in pdf.warnings)
    assert plain.text == "" and plain.ocr is None


@pytest.mark.parametrize("engine", ["rapidocr", "tesseract"])
def test_lines_carry_word_confidences_and_low_ones_are_marked(tmp_path: Path, engine: str) -> None:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    _require(engine)
    image = Image.new("RGB", (900, 260), "white")
    draw = ImageDraw.Draw(image)
    draw.text((24, 30), LINES[0], fill="black", font=ImageFont.load_default(size=28))
    # the second line barely there: grey on white, tiny and blurred
    faint = Image.new("RGB", (900, 60), "white")
    ImageDraw.Draw(faint).text(
        (24, 20), LINES[1], fill=(200, 200, 200), font=ImageFont.load_default(size=11)
    )
    image.paste(faint.filter(ImageFilter.GaussianBlur(1.6)), (0, 150))
    lines = ocr.recognise(image, lambda: None, engine)
    assert lines, "nothing read"
    first = lines[0]
    assert _cer(LINES[0], first.text) <= 1 / len(LINES[0]), first.text
    assert first.confidence > ocr.LOW_CONFIDENCE and not first.low_confidence
    assert " ".join(w.text for w in first.words) == first.text
    assert all(0.0 <= w.confidence <= 1.0 for ln in lines for w in ln.words)
    summary = ocr.info(lines, engine)
    assert summary.lines == len(lines)
    notes = ocr.low_confidence_note(lines, page=2)
    assert len(notes) == summary.low_confidence_lines
    assert all(n.startswith("page 3 line ") for n in notes)
    # whatever the engine made of the faint line, it is either absent or marked
    for line in lines[1:]:
        if _words(line.text) != LINES[1]:
            assert line.low_confidence or any(w.confidence < ocr.LOW_CONFIDENCE for w in line.words)


def test_tesseract_absent_is_a_clear_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no tesseract on PATH the engine says what to install; ``auto`` falls back."""
    monkeypatch.setenv("PATH", str(tmp_path))
    problem = ocr.available("tesseract")
    assert problem is not None and "apt-get install tesseract-ocr" in problem
    assert ocr.resolve("auto") == "rapidocr"
    assert ocr.available("auto") is None


def test_missing_tesseract_language_pack_is_named() -> None:
    _require("tesseract")
    assert ocr.available("tesseract", "eng") is None
    note = ocr.language_note("tesseract", "eng+zzz")
    assert note is not None and "zzz" in note and "read with eng" in note
    assert "tesseract-ocr-zzz" in note
    problem = ocr.available("tesseract", "zzz")
    assert problem is not None and "none of the language packs" in problem
    assert ocr.language_note("rapidocr", "zzz") is None


def test_a_big_noisy_page_is_read_by_tesseract_with_heartbeats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page whose PNG is far larger than a pipe buffer, slow to read: it is read (the image
    goes to Tesseract by file, so nothing waits on a half-written pipe) and progress is
    reported while Tesseract works."""
    import random

    from PIL import Image, ImageDraw, ImageFont

    _require("tesseract")
    image = Image.new("RGB", (2400, 1600), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=30)
    for n in range(20):
        draw.text((40, 40 + 70 * n), f"Line {n}: {LINES[n % 2]}", fill="black", font=font)
    pixels, rng = image.load(), random.Random(1)
    for _ in range(50_000):  # light speckle: a PNG of ~0.5 MB (a pipe holds 64 KB)
        pixels[rng.randrange(2400), rng.randrange(1600)] = (rng.randrange(256),) * 3
    beats: list[int] = []
    # a heartbeat every 20 ms: Tesseract on a 2400x1600 page takes far longer on any machine,
    # so the beats are there however fast this one is (the default is 1 s)
    monkeypatch.setattr(ocr, "HEARTBEAT_S", 0.02)
    lines = ocr.recognise(image, lambda: beats.append(1), "tesseract")
    assert len(lines) >= 18
    assert sum("Warsaw" in line.text or "Physics" in line.text for line in lines) >= 15
    assert beats  # it took more than a heartbeat, and said so


def _tesseract_cli(path: Path) -> str:
    """The raw CLI's text for an image file, as a user would run it."""
    import os
    import subprocess

    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    done = subprocess.run(
        ["tesseract", str(path), "stdout", "-l", "eng"], capture_output=True, check=True, env=env
    )
    return _words(done.stdout.decode("utf-8", "replace"))


def test_tesseract_through_ours_reads_what_its_cli_reads(tmp_path: Path) -> None:
    """Large type among specks: what Tesseract makes of them depends on the resolution the file
    declares (a photo's 72 dpi is not an image without one). Ours reads the same page as the
    CLI, from the file or from memory with the resolution passed, and prints what it prints."""
    import random

    from PIL import Image, ImageDraw, ImageFont

    _require("tesseract")
    image = Image.new("RGB", (1000, 500), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=120)
    draw.text((20, 20), "Marie Curie", fill="black", font=font)
    draw.text((20, 220), "Warsaw 1867", fill="black", font=font)
    rng = random.Random(5)
    for _ in range(200):
        x, y, r = rng.randrange(1000), rng.randrange(500), rng.randrange(2, 6)
        draw.ellipse((x, y, x + r, y + r), fill="black")
    files = {
        "none": tmp_path / "none.png",
        "png300": tmp_path / "png300.png",
        "jpg72": tmp_path / "jpg72.jpg",
    }
    image.save(files["none"])
    image.save(files["png300"], dpi=(300, 300))
    image.save(files["jpg72"], quality=95, dpi=(72, 72))
    raw = {name: _tesseract_cli(path) for name, path in files.items()}
    # the page is one whose reading depends on the declared resolution
    assert raw["none"] != raw["png300"] and raw["none"] != raw["jpg72"], raw
    for name, path in files.items():
        with Image.open(path) as opened:
            from_file = ocr.recognise(opened, lambda: None, "tesseract")
            dpi = ocr.image_dpi(opened)
            opened.load()
            in_memory = Image.frombytes(opened.mode, opened.size, opened.tobytes())
        ours = _words("\n".join(line.text for line in from_file))
        assert ours == raw[name], (name, ours, raw[name])
        lines = ocr.recognise(in_memory, lambda: None, "tesseract", dpi=dpi)
        assert _words("\n".join(line.text for line in lines)) == raw[name], name
        assert all(0.0 <= w.confidence <= 1.0 for ln in lines for w in ln.words)


def test_a_file_tesseract_cannot_read_is_read_from_the_decoded_image(tmp_path: Path) -> None:
    """Should Tesseract fail on the image's own file, the page Pillow decoded goes instead."""
    from PIL import Image

    _require("tesseract")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    with Image.open(_page(tmp_path / "page.png", "PNG")) as opened:
        opened.load()
        lines = ocr._recognise_tesseract(opened, lambda: None, "eng", None, str(broken))
    read = [_words(line.text) for line in lines]
    assert len(read) == len(LINES), read
    for line, printed in zip(read, LINES, strict=True):
        assert _cer(printed, line) <= 1 / len(printed), (line, printed)
