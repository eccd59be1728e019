"""OCR for images and PDF pages without a text layer: RapidOCR (PP-OCRv4 ONNX) or Tesseract 5.

Two engines, chosen by ``TL_EXTRACT_OCR`` (``rapidocr``, ``tesseract``, ``auto`` or ``off``):

``rapidocr``
    ``rapidocr-onnxruntime`` 1.4.4 ships its detection, direction and recognition models as
    ONNX files inside the wheel (nothing is downloaded) and runs them on ONNX Runtime, already
    a dependency. Its recognition model (the Chinese-English PP-OCRv4 one) often leaves out the
    space between two English words: the greedy CTC decode keeps a space only where it is the
    most likely symbol of a frame. We decode the same network output ourselves and put a space
    between two characters when the space symbol's probability in a frame between them reaches
    :data:`SPACE_PROBABILITY` (measured on 7,543 character boundaries of rendered pages:
    below it between letters of one word at all but 14 of 6,247, at or above it between words
    at all but 5 of 1,296; see docs/ARCHITECTURE.md). The direction classifier
    is not run on every line (it turned whole upright lines upside down on rendered pages, and
    those lines were lost); a page that reads badly upright is read again with it.
``tesseract``
    The Debian ``tesseract-ocr`` 5 binary through its command line, called as a user would
    call it on the image file: the same page segmentation (``--psm 3``, its default) and the
    image's own resolution (``--dpi``, read from the file's header as Leptonica reads it: a
    photo's 72 dpi is not the same page to Tesseract as an image without one, whose
    resolution it estimates from the text). One run writes the plain text and the TSV (every
    word with its box and confidence); the lines kept are those of the plain text, so nothing
    that Tesseract's own text renderer leaves out (the words of blocks it takes for pictures
    or rules) enters ours, and each keeps its words' confidences. An image opened from a
    file Tesseract reads (single-frame JPEG, PNG, TIFF, BMP, PNM; 1-bit, grey or RGB; not
    scaled down) goes as that file; any other as an uncompressed TIFF in its own mode
    (Tesseract reads a grey page differently from the same page in RGB): a PNG cost more to
    write than the CLI spends decoding the original JPEG, and Leptonica read a PPM more
    slowly than that JPEG.
    Language packs (``tesseract-ocr-eng``, ``-deu``...) are named by
    ``TL_EXTRACT_OCR_LANGUAGES``. Found on ``PATH`` at run time; when it is absent the file
    is extracted without OCR and a warning says why and what to install.
``auto``
    Tesseract when its binary is installed, else RapidOCR.

RapidOCR's boxes are put into lines by their geometry (a box joins a line when its vertical
middle falls inside the line's band; a line reads left to right, its boxes joined by a space)
and the lines into reading order (top to bottom); Tesseract's words keep its own lines. Every word and line keeps
its recognition confidence (0-1); lines below :data:`LOW_CONFIDENCE` and words below it are
counted in the result's :class:`~thunderline.extract.result.OcrInfo`, and the low lines are
listed, with their page, in ``raw["ocr_low_confidence"]`` so that nobody mistakes them for
read text.

The engine runs in the extraction worker. While it works a heartbeat thread reports progress,
so only the total timeout of the ``ocr`` kind stops a slow page; the address-space cap applies
as to any parser.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from thunderline.extract.base import library_version
from thunderline.extract.result import OcrInfo

#: The engines (``auto`` resolves to one of them, ``off`` switches OCR off).
ENGINES = ("rapidocr", "tesseract")
#: Lines (and words) whose recognition confidence is below this are marked low-confidence.
LOW_CONFIDENCE = 0.8
#: Longest image side handed to the engine (larger images are scaled down first).
MAX_SIDE = 2400
#: Images smaller than this on both sides are not OCR'd (icons, thumbnails, 28x28 digits).
MIN_SIDE = 48
#: Tesseract trusts an image resolution only in this range (dpi); outside it, and with none,
#: it estimates the resolution from the text (``kMinCredibleResolution``/``kMax...``).
TESSERACT_DPI_RANGE = (70, 2400)
#: Seconds between heartbeat progress reports while the engine works.
HEARTBEAT_S = 1.0
#: RapidOCR: a space goes between two characters when the space symbol reaches this
#: probability in a frame between them (see the module docstring).
SPACE_PROBABILITY = 0.003
#: RapidOCR: a page whose upright reading is below this mean confidence (or empty) is read
#: again with the direction classifier, and the better reading is kept.
RETRY_WITH_CLS_BELOW = 0.75

_engines: dict[Any, Any] = {}  # loaded engines and cached answers, per worker process


@dataclass(frozen=True)
class OcrWord:
    """One word read: its text, confidence (0-1) and box (pixels of the image, if known)."""

    text: str
    confidence: float
    left: float = 0.0
    top: float = 0.0
    right: float = 0.0
    bottom: float = 0.0


@dataclass(frozen=True)
class OcrLine:
    """One line of text in reading order, with its words and its confidence (0-1)."""

    text: str
    confidence: float
    top: float
    left: float
    words: tuple[OcrWord, ...] = ()
    bottom: float = 0.0

    @property
    def low_confidence(self) -> bool:
        """True when the line's confidence is below :data:`LOW_CONFIDENCE`."""
        return self.confidence < LOW_CONFIDENCE


@dataclass(frozen=True)
class _Box:
    """A run of text the engine found (a word for Tesseract, a line piece for RapidOCR)."""

    words: tuple[OcrWord, ...]
    left: float
    top: float
    right: float
    bottom: float


# ---- engine choice ---------------------------------------------------------------------------
def tesseract_binary() -> str | None:
    """The path of the ``tesseract`` binary on ``PATH`` (None: not installed)."""
    return shutil.which("tesseract")


def resolve(engine: str) -> str:
    """The engine that runs for a ``TL_EXTRACT_OCR`` value (``auto``: Tesseract if installed)."""
    if engine == "auto":
        return "tesseract" if tesseract_binary() else "rapidocr"
    return engine


def available(engine: str = "rapidocr", languages: str = "eng") -> str | None:
    """Why OCR with ``engine`` cannot run here (None: it can).

    Args:
        engine: ``rapidocr``, ``tesseract`` or ``auto``.
        languages: The Tesseract language packs asked for (``+``-joined); Tesseract cannot
            run when it has none of them.

    Returns:
        A sentence naming what is missing and how to install it, or None.
    """
    engine = resolve(engine)
    if engine == "tesseract":
        if tesseract_binary() is None:
            return (
                "the tesseract binary is not on PATH (Debian/Ubuntu: apt-get install "
                "tesseract-ocr tesseract-ocr-eng; or set TL_EXTRACT_OCR=rapidocr)"
            )
        if not usable_languages(languages)[0]:
            return (
                f"Tesseract has none of the language packs {languages!r} (it has "
                f"{'+'.join(tesseract_languages()) or 'none'}; TL_EXTRACT_OCR_LANGUAGES)"
            )
        return None
    if engine != "rapidocr":
        return f"unknown OCR engine {engine!r}: use one of {ENGINES} or auto"
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"rapidocr-onnxruntime is not installed ({exc}); pip install rapidocr-onnxruntime"
    return None


def tesseract_languages() -> list[str]:
    """The language packs Tesseract has (``tesseract --list-langs``; empty if absent)."""
    binary = tesseract_binary()
    if binary is None:
        return []
    cached = _engines.get(("tesseract-languages", binary))
    if cached is None:
        done = subprocess.run(
            [binary, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
        )
        lines = done.stdout.splitlines()
        cached = [ln.strip() for ln in lines[1:] if ln.strip() and ln.strip() != "osd"]
        _engines[("tesseract-languages", binary)] = cached
    return list(cached)


def usable_languages(languages: str) -> tuple[str, list[str]]:
    """(the ``+``-joined packs of ``languages`` that Tesseract has, the ones it lacks)."""
    have = set(tesseract_languages())
    wanted = [lang for lang in languages.split("+") if lang]
    return "+".join(x for x in wanted if x in have), [x for x in wanted if x not in have]


def language_note(engine: str, languages: str) -> str | None:
    """A warning when Tesseract lacks some of the language packs asked for.

    Returns:
        The warning, or None when it has them all or the engine is not Tesseract.
    """
    if resolve(engine) != "tesseract" or tesseract_binary() is None:
        return None
    usable, missing = usable_languages(languages)
    if not missing:
        return None
    packs = " ".join(f"tesseract-ocr-{x.lower().replace('_', '-')}" for x in missing)
    read = f"read with {usable}" if usable else "not read"
    return f"OCR: Tesseract has no language pack for {'+'.join(missing)} ({read}; install {packs})"


def engine_version(engine: str) -> str:
    """The version of the engine that runs (``tesseract --version``, or the wheel's)."""
    engine = resolve(engine)
    if engine == "tesseract":
        if "tesseract-version" not in _engines:
            binary = tesseract_binary()
            version = "unknown"
            if binary is not None:
                done = subprocess.run(
                    [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
                )
                first = (done.stdout or done.stderr).split("\n", 1)[0].split()
                version = first[-1] if first else "unknown"
            _engines["tesseract-version"] = version
        return str(_engines["tesseract-version"])
    return library_version("rapidocr-onnxruntime")


# ---- the heartbeat ---------------------------------------------------------------------------
@contextmanager
def _heartbeat(progress: Callable[[], None]) -> Iterator[None]:
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_S):
            progress()

    ticker = threading.Thread(target=beat, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()


# ---- RapidOCR --------------------------------------------------------------------------------
class _SpacedDecode:
    """RapidOCR's CTC decode, with the spaces its greedy decode leaves out put back.

    Returns ``(text, confidence, word_confidences)`` per line: RapidOCR passes the third item
    through to its result rows untouched.
    """

    def __init__(self, original: Any) -> None:
        self.original = original
        self.character = list(original.character)
        self.space = self.character.index(" ") if " " in self.character else -1

    def __call__(self, preds: Any, return_word_box: bool = False, **kwargs: Any) -> Any:
        if return_word_box or self.space < 0:
            return self.original(preds, return_word_box, **kwargs)
        return [self.decode_one(p) for p in preds]

    def decode_one(self, probs: Any) -> tuple[str, float, list[float]]:
        """One line: ``probs`` is ``[frames, symbols]`` (symbol 0 is the CTC blank)."""
        import numpy as np

        best = probs.argmax(axis=1)
        keep = np.ones(len(best), dtype=bool)
        keep[1:] = best[1:] != best[:-1]
        keep &= best != 0
        frames = np.nonzero(keep)[0]
        if len(frames) == 0:
            return "", 0.0, []
        space_p = probs[:, self.space]
        words: list[tuple[list[str], list[float]]] = [([], [])]
        previous = -1
        for frame in frames:
            symbol = int(best[frame])
            score = float(probs[frame, symbol])
            if symbol == self.space:
                words.append(([], []))
                previous = -1
                continue
            gap = frame - previous > 1 and previous >= 0
            if gap and float(space_p[previous + 1 : frame].max()) >= SPACE_PROBABILITY:
                words.append(([], []))
            words[-1][0].append(self.character[symbol])
            words[-1][1].append(score)
            previous = int(frame)
        texts = ["".join(chars) for chars, _ in words if chars]
        confs = [sum(scores) / len(scores) for chars, scores in words if chars]
        all_scores = [s for _, scores in words for s in scores]
        mean = sum(all_scores) / len(all_scores) if all_scores else 0.0
        return " ".join(texts), mean, confs


def _rapidocr() -> Any:
    engine = _engines.get("rapidocr")
    if engine is None:
        from rapidocr_onnxruntime import RapidOCR

        engine = RapidOCR()
        recogniser = engine.text_rec
        recogniser.postprocess_op = _SpacedDecode(recogniser.postprocess_op)
        _engines["rapidocr"] = engine
    return engine


def _rapid_boxes(rows: Any) -> list[_Box]:
    boxes: list[_Box] = []
    for row in rows or []:
        box, text, score = row[0], str(row[1]), float(row[2])
        confs = list(row[3]) if len(row) > 3 and row[3] is not None else []
        parts = text.split()
        if not parts:
            continue
        if len(confs) != len(parts):
            confs = [score] * len(parts)
        xs = [float(p[0]) for p in box]
        ys = [float(p[1]) for p in box]
        words = tuple(OcrWord(w, float(c)) for w, c in zip(parts, confs, strict=True))
        boxes.append(_Box(words, min(xs), min(ys), max(xs), max(ys)))
    return boxes


def _weight(boxes: list[_Box]) -> float:
    """How much confident text a reading holds (characters times confidence)."""
    return sum(len(w.text) * w.confidence for b in boxes for w in b.words)


def _mean(boxes: list[_Box]) -> float:
    chars = sum(len(w.text) for b in boxes for w in b.words)
    return _weight(boxes) / chars if chars else 0.0


def _recognise_rapidocr(array: Any) -> list[_Box]:
    engine = _rapidocr()
    found, _ = engine(array, use_cls=False)
    boxes = _rapid_boxes(found)
    if not boxes or _mean(boxes) < RETRY_WITH_CLS_BELOW:
        again, _ = engine(array, use_cls=True)
        other = _rapid_boxes(again)
        if _weight(other) > _weight(boxes):
            boxes = other
    return boxes


# ---- Tesseract -------------------------------------------------------------------------------
def image_dpi(image: Any) -> float | None:
    """The resolution (dpi) the image's file declares, as Leptonica (Tesseract's reader) sees it.

    JPEG: the JFIF density only (Pillow falls back to EXIF or 72 where Leptonica reads none);
    PNG, TIFF, BMP...: Pillow's ``dpi``. None when the file declares none.
    """
    info = getattr(image, "info", None) or {}
    if getattr(image, "format", None) == "JPEG":
        density, unit = info.get("jfif_density"), info.get("jfif_unit")
        if not density or unit not in (1, 2):
            return None
        value = float(density[1])
        return value * 2.54 if unit == 2 else value
    dpi = info.get("dpi")
    try:
        value = float(dpi[1]) if dpi else 0.0
    except (TypeError, ValueError, IndexError):
        return None
    return value if value > 0 else None


def tesseract_command(
    image: str, languages: str = "eng", *, output: str = "stdout", dpi: float | None = None
) -> list[str]:
    """The command that reads the image file ``image``.

    With ``output="stdout"`` it writes TSV (every word with its box and confidence) to
    stdout; with a file base it writes ``BASE.txt`` (Tesseract's plain text) and ``BASE.tsv``.
    ``--psm 3`` (automatic layout) is the CLI's default; ``--dpi`` is passed when the image
    declares a resolution Tesseract would trust (:data:`TESSERACT_DPI_RANGE`), else Tesseract
    estimates it as it does for the file itself.
    """
    binary = tesseract_binary() or "tesseract"
    command = [binary, image, output, "-l", languages, "--psm", "3"]
    if dpi is not None:
        low, high = TESSERACT_DPI_RANGE
        if low <= round(dpi) <= high:
            command += ["--dpi", str(round(dpi))]
    if output == "stdout":
        return [*command, "tsv"]
    return [*command, "-c", "tessedit_create_txt=1", "-c", "tessedit_create_tsv=1"]


def _run(command: list[str], progress: Callable[[], None]) -> str:
    env = dict(os.environ)
    env.setdefault("OMP_THREAD_LIMIT", "1")  # one worker, one core: no OpenMP fan-out
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,  # the image goes by file: CPython's communicate() stops
        stdout=subprocess.PIPE,  # writing stdin after its first timeout, so a big image on
        stderr=subprocess.PIPE,  # a pipe would hang
        env=env,
    )
    while True:
        try:
            out, err = process.communicate(timeout=HEARTBEAT_S)
            break
        except subprocess.TimeoutExpired:
            progress()
        except BaseException:
            process.kill()
            process.wait()
            raise
    if process.returncode != 0:
        message = err.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(
            f"tesseract exited with {process.returncode}: {message[-1] if message else ''}"
        )
    return out.decode("utf-8", "replace")


def _words(text: str) -> str:
    return " ".join(text.split())


def tesseract_lines(tsv: str, text: str | None = None) -> list[OcrLine]:
    """Tesseract's TSV as lines, in its reading order.

    Words are grouped by Tesseract's own page/block/paragraph/line ids (so columns stay
    apart); confidences are scaled to 0-1; words without text or confidence are left out.

    Args:
        tsv: The TSV renderer's output.
        text: The plain-text renderer's output of the same run. When given, only the lines it
            printed are kept: it leaves out the paragraphs of blocks Tesseract took for
            pictures or rules, which the TSV still lists. Should its lines not all be found,
            in order, among the TSV's, every TSV line is kept (no text is lost).
    """
    order: list[tuple[str, ...]] = []
    groups: dict[tuple[str, ...], list[tuple[_Box | None, str]]] = {}
    reader = csv.reader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE)
    next(reader, None)  # header
    for row in reader:
        if len(row) < 12 or row[0] != "5":  # level 5: a word
            continue
        word_text = row[11].strip()
        if not word_text:
            continue
        key = tuple(row[1:5])
        if key not in groups:
            groups[key] = []
            order.append(key)
        try:
            conf = float(row[10])
            left, top, width, height = (float(v) for v in row[6:10])
        except ValueError:
            conf = -1.0
        if conf < 0:  # printed by no renderer as read text: kept only to match the lines
            groups[key].append((None, word_text))
            continue
        right, bottom = left + width, top + height
        word = OcrWord(word_text, min(max(conf / 100.0, 0.0), 1.0), left, top, right, bottom)
        groups[key].append((_Box((word,), left, top, right, bottom), word_text))
    keys = order
    if text is not None:
        printed = [_words(ln) for ln in text.splitlines() if ln.strip()]
        kept: list[tuple[str, ...]] = []
        for key in order:
            if (
                len(kept) < len(printed)
                and _words(" ".join(t for _, t in groups[key])) == printed[len(kept)]
            ):
                kept.append(key)
        if len(kept) == len(printed):
            keys = kept
    lines: list[OcrLine] = []
    for key in keys:
        boxes = [box for box, _ in groups[key] if box is not None]
        if boxes:
            lines.append(_line(boxes))
    return lines


#: Modes Tesseract reads as they are (other modes are converted to RGB first).
_TESSERACT_MODES = ("1", "L", "RGB")


#: Formats that Pillow and Leptonica both read, handed to Tesseract as the file itself.
_TESSERACT_FILES = ("JPEG", "PNG", "TIFF", "BMP", "PPM")


def _source_file(image: Any) -> str | None:
    """The file an image was opened from, when Tesseract can read that file as it is.

    That is: Pillow opened it from a path, as a single-frame JPEG, PNG, TIFF, BMP or PNM in
    1-bit, grey or RGB mode (what Tesseract would read from it is this very image).
    """
    filename = getattr(image, "filename", None)
    if (
        not filename
        or getattr(image, "format", None) not in _TESSERACT_FILES
        or image.mode not in _TESSERACT_MODES
        or getattr(image, "n_frames", 1) != 1
        or not os.path.isfile(filename)
    ):
        return None
    return str(filename)


def _recognise_tesseract(
    image: Any,
    progress: Callable[[], None],
    languages: str,
    dpi: float | None,
    source: str | None = None,
) -> list[OcrLine]:
    """Tesseract's lines for ``image``, read from ``source`` (its file) when there is one.

    Otherwise (or should Tesseract fail on that file) the image goes as a temporary TIFF.
    """
    usable = usable_languages(languages)[0]
    if not usable:
        raise RuntimeError(f"Tesseract has none of the language packs {languages!r}")
    with tempfile.TemporaryDirectory(prefix="tl-ocr-") as folder:
        base = os.path.join(folder, "out")
        done = False
        if source is not None:
            try:
                _run(tesseract_command(source, usable, output=base, dpi=dpi), progress)
                done = True
            except RuntimeError:  # Leptonica could not read what Pillow did: re-encode
                done = False
        if not done:
            path = os.path.join(folder, "page.tif")
            image.save(path, "TIFF")  # uncompressed, no resolution tag: --dpi says it
            _run(tesseract_command(path, usable, output=base, dpi=dpi), progress)
        with open(base + ".tsv", encoding="utf-8", errors="replace") as tsv_file:
            tsv = tsv_file.read()
        with open(base + ".txt", encoding="utf-8", errors="replace") as text_file:
            text = text_file.read()
        return tesseract_lines(tsv, text)


# ---- lines from boxes ------------------------------------------------------------------------
def build_lines(boxes: list[_Box]) -> list[OcrLine]:
    """Boxes into lines (by vertical overlap), each read left to right, lines top to bottom."""
    rows: list[list[_Box]] = []
    bands: list[tuple[float, float]] = []
    for box in sorted(boxes, key=lambda b: ((b.top + b.bottom) / 2, b.left)):
        middle = (box.top + box.bottom) / 2
        for n, (top, bottom) in enumerate(bands):
            if top <= middle <= bottom:
                rows[n].append(box)
                break
        else:
            rows.append([box])
            bands.append((box.top, box.bottom))
    return [_line(row) for row in rows]


def _line(row: list[_Box]) -> OcrLine:
    """One line from its boxes, read left to right."""
    row = sorted(row, key=lambda b: b.left)
    words = tuple(w for b in row for w in b.words)
    chars = sum(len(w.text) for w in words)
    conf = sum(len(w.text) * w.confidence for w in words) / chars if chars else 0.0
    return OcrLine(
        text=" ".join(w.text for w in words),
        confidence=conf,
        top=min(b.top for b in row),
        left=min(b.left for b in row),
        words=words,
        bottom=max(b.bottom for b in row),
    )


def recognise(
    image: Any,
    progress: Callable[[], None],
    engine: str = "rapidocr",
    *,
    languages: str = "eng",
    dpi: float | None = None,
) -> list[OcrLine]:
    """The text lines of a PIL image in reading order (top to bottom, left to right).

    Args:
        image: A PIL image (any mode). Opened from a file Tesseract reads as it is (a
            single-frame JPEG, PNG, TIFF, BMP or PNM, 1-bit, grey or RGB, at most
            :data:`MAX_SIDE`), Tesseract reads that file, as its CLI would.
        progress: Called about every :data:`HEARTBEAT_S` seconds while the engine works.
        engine: ``rapidocr``, ``tesseract`` or ``auto``.
        languages: Tesseract language packs, ``+``-joined (``eng+deu``); RapidOCR ignores it.
        dpi: The image's resolution (a rendered PDF page's); None: the one its file declares
            (:func:`image_dpi`). Tesseract reads the page at it; RapidOCR ignores it.

    Returns:
        The lines read (empty for an image under :data:`MIN_SIDE` on both sides).

    Raises:
        RuntimeError: the Tesseract binary failed.
    """
    import numpy as np

    if max(image.size) < MIN_SIDE or min(image.size) < 8:
        return []
    chosen = resolve(engine)
    given_dpi = dpi
    if dpi is None:
        dpi = image_dpi(image)
    # Tesseract reads 1-bit, grey and colour pages as they are; RapidOCR wants RGB
    keep = chosen == "tesseract" and image.mode in _TESSERACT_MODES
    page = image if keep else image.convert("RGB")
    source = _source_file(image) if keep else None
    scale = MAX_SIDE / max(page.size)
    if scale < 1:
        source = None
        if page.mode == "1":
            page = page.convert("L")
        page = page.resize((max(1, int(page.width * scale)), max(1, int(page.height * scale))))
        dpi = dpi * scale if dpi is not None else None
    with _heartbeat(progress):
        if chosen == "tesseract":
            if source is not None and given_dpi is None:
                dpi = None  # the file says its own resolution, as to the CLI
            return _recognise_tesseract(page, progress, languages, dpi, source)
        array = np.asarray(page)[:, :, ::-1].copy()  # RGB -> BGR, as OpenCV expects
        return build_lines(_recognise_rapidocr(array))


def info(lines: list[OcrLine], engine: str = "rapidocr") -> OcrInfo:
    """The confidence summary of the lines read by ``engine``."""
    chosen = resolve(engine)
    mean = sum(ln.confidence for ln in lines) / len(lines) if lines else 0.0
    return OcrInfo(
        engine=chosen,
        version=engine_version(chosen),
        mean_confidence=round(min(max(mean, 0.0), 1.0), 4),
        lines=len(lines),
        low_confidence_lines=sum(1 for ln in lines if ln.low_confidence),
        words=sum(len(ln.words) for ln in lines),
        low_confidence_words=sum(
            1 for ln in lines for w in ln.words if w.confidence < LOW_CONFIDENCE
        ),
        threshold=LOW_CONFIDENCE,
    )


def merge(infos: list[OcrInfo]) -> OcrInfo | None:
    """One summary for several pages."""
    if not infos:
        return None
    lines = sum(i.lines for i in infos)
    mean = sum(i.mean_confidence * i.lines for i in infos) / lines if lines else 0.0
    return replace(
        infos[0],
        mean_confidence=round(mean, 4),
        lines=lines,
        low_confidence_lines=sum(i.low_confidence_lines for i in infos),
        words=sum(i.words for i in infos),
        low_confidence_words=sum(i.low_confidence_words for i in infos),
    )


def low_confidence_note(lines: list[OcrLine], page: int | None = None) -> list[str]:
    """One note per low-confidence line: where it is (page, line), its confidence, its text."""
    where = f"page {page + 1} " if page is not None else ""
    return [
        f"{where}line {n + 1} ({ln.confidence:.2f}): {ln.text[:80]}"
        for n, ln in enumerate(lines)
        if ln.low_confidence
    ]


__all__ = [
    "ENGINES",
    "LOW_CONFIDENCE",
    "OcrLine",
    "OcrWord",
    "available",
    "build_lines",
    "image_dpi",
    "info",
    "merge",
    "recognise",
    "resolve",
]
