"""What every extractor shares: the job context, the text builder and the extractor record.

An extractor is a plain function ``(path, ctx) -> ExtractResult`` registered with the Magika
labels it reads (:mod:`.registry`). It runs inside a worker process (:mod:`.worker`), reads
the payload from ``path``, reports progress with ``ctx.progress()`` (the supervisor kills a
worker that stays silent past the progress timeout), builds its text with a
:class:`TextBuilder` (capped at ``ctx.max_text_bytes``, boundaries and headings recorded) and
writes embedded parts with ``ctx.add_part`` (capped by count and bytes).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from thunderline.extract.result import (
    ContentKind,
    DocMetadata,
    EmbeddedPart,
    ExtractResult,
    Heading,
    Segment,
    SegmentKind,
    clip_raw,
)

_NAME_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")


@cache
def library_version(distribution: str) -> str:
    """The installed version of a distribution (``stdlib``: the Python version)."""
    if distribution == "stdlib":
        import platform

        return platform.python_version()
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def read_head(path: Path, budget: int) -> tuple[bytes, bool]:
    """At most ``budget`` bytes of ``path`` and whether the file is longer.

    Read unbuffered (no buffer object made for one read); ``read(n)`` allocates n bytes up
    front, so it asks for the file's size (and one byte more), not the whole budget.
    """
    with open(path, "rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        want = min(budget, size) + 1  # the byte past the size says the file is longer
        chunks: list[bytes] = []
        got = 0
        while got < want:
            chunk = handle.read(want - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
            if got == want <= budget:  # the file grew while read: read on, to the budget
                want = budget + 1
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return data[:budget], len(data) > budget


@dataclass
class ExtractContext:
    """One job: its limits, where parts go, and how to report progress."""

    label: str
    mime: str = ""
    max_text_bytes: int = 1_000_000
    max_parts: int = 1000
    max_part_bytes: int = 256 * 1024 * 1024
    max_ratio: float = 100.0  # largest expansion of a compressed embedded object
    parts_dir: Path | None = None
    ocr: bool = False  # read images and PDF pages without a text layer with OCR
    ocr_engine: str = "rapidocr"  # rapidocr, tesseract or auto (thunderline.extract.ocr)
    ocr_languages: str = "eng"  # Tesseract language packs, +-joined
    progress: Callable[[], None] = lambda: None
    parts: list[EmbeddedPart] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _part_bytes: int = 0

    def warn(self, message: str) -> None:
        """Add ``message`` to the result's warnings (once: a repeated message is kept once)."""
        if message not in self.warnings:
            self.warnings.append(message)

    def add_part(
        self,
        name: str,
        data: bytes,
        *,
        kind: str = "attachment",
        mime: str | None = None,
    ) -> None:
        """Write one embedded part to the spool folder.

        Skipped with a warning past the limits, or when the job keeps no parts.
        """
        if self.parts_dir is None:
            return
        if len(self.parts) >= self.max_parts:
            self.warn(f"more than {self.max_parts} embedded parts: the rest are not kept")
            return
        if self._part_bytes + len(data) > self.max_part_bytes:
            self.warn(f"embedded parts exceed {self.max_part_bytes} bytes: the rest are not kept")
            return
        index = len(self.parts)
        spool = f"part-{index:05d}"
        (self.parts_dir / spool).write_bytes(data)
        self._part_bytes += len(data)
        clean = _NAME_SAFE.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip() or spool
        self.parts.append(
            EmbeddedPart(
                index=index,
                name=clean[:200],
                size=len(data),
                kind="embedded" if kind == "embedded" else "attachment",
                mime=mime,
                spool=spool,
            )
        )
        self.progress()


class TextBuilder:
    """Accumulates text with its segments and headings, up to a byte cap.

    ``line()`` / ``para()`` add text; ``segment(kind)`` opens a segment that lasts until the
    next one or ``build()``; ``heading(level, text)`` adds a heading line and records it.
    Past the cap further text is dropped and ``truncated`` is set.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._parts: list[str] = []
        self._size = 0  # UTF-8 bytes so far
        self._chars = 0
        self.truncated = False
        self.segments: list[Segment] = []
        self.headings: list[Heading] = []
        self._open: tuple[SegmentKind, int, int, str | None] | None = None
        self._counts: dict[str, int] = {}

    @property
    def full(self) -> bool:
        """Whether the text reached ``max_bytes``: nothing more will be added, stop reading."""
        return self.truncated

    @property
    def chars(self) -> int:
        """Characters so far (the offset the next text starts at)."""
        return self._chars

    def _append(self, text: str) -> None:
        if self.truncated or not text:
            return
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if self._size + size > self.max_bytes:
            room = self.max_bytes - self._size
            text = text.encode("utf-8", "surrogatepass")[: max(room, 0)].decode("utf-8", "ignore")
            size = len(text.encode("utf-8", "surrogatepass"))
            self.truncated = True
        self._parts.append(text)
        self._size += size
        self._chars += len(text)

    def _separate(self, sep: str) -> None:
        if not self._chars:
            return
        last = self._parts[-1] if self._parts else ""
        if last.endswith(sep):
            return
        if sep == "\n\n" and last.endswith("\n"):
            sep = "\n"
        self._append(sep)

    def text(self, text: str) -> None:
        """Add text as it is (no separator)."""
        self._append(text)

    def line(self, text: str) -> None:
        """Add a line (a newline before it unless at the start)."""
        text = text.strip("\n")
        if not text or text.isspace():  # blank (strip() made a copy to find out)
            return
        # _separate("\n") then _append(text), in one append: the same text either way (a cut
        # at the cap falls on the same byte), one call and one list item less per line
        if self._chars and not self.truncated and not self._parts[-1].endswith("\n"):
            text = "\n" + text
        self._append(text)

    def para(self, text: str) -> None:
        """Add a paragraph (a blank line before it unless at the start)."""
        text = text.strip("\n")
        if not text or text.isspace():
            return
        if self._chars and not self.truncated:  # _separate("\n\n") in the same append
            last = self._parts[-1]
            if not last.endswith("\n\n"):
                text = ("\n" if last.endswith("\n") else "\n\n") + text
        self._append(text)

    def heading(self, level: int, text: str) -> None:
        """Add a heading as its own paragraph and record it (level clamped to 1-9).

        White space is collapsed; an empty heading is dropped; the recorded text is cut at 500
        characters.
        """
        text = " ".join(text.split())
        if not text:
            return
        # _separate("\n\n") then _append(text) in one append, as in line()
        start = self._chars
        if start and not self.truncated:
            last = self._parts[-1]
            if not last.endswith("\n\n"):
                sep = "\n" if last.endswith("\n") else "\n\n"
                start += len(sep)
                text_in = sep + text
            else:
                text_in = text
        else:
            text_in = text
        self._append(text_in)
        if not self.truncated:
            level = level if 1 <= level <= 9 else max(1, min(level, 9))
            self.headings.append(Heading(level=level, text=text[:500], start=start))

    def segment(self, kind: SegmentKind, title: str | None = None) -> None:
        """Start a new segment of ``kind`` (closing the open one)."""
        self._close()
        self._separate("\n\n")
        index = self._counts.get(kind, 0)
        self._counts[kind] = index + 1
        self._open = (kind, index, self._chars, title)

    def _close(self) -> None:
        if self._open is not None:
            kind, index, start, title = self._open
            self.segments.append(
                Segment(
                    kind=kind,
                    index=index,
                    start=start,
                    end=max(self._chars, start),
                    title=(title or None) and title[:300],
                )
            )
            self._open = None

    def build(self) -> str:
        """Close the open segment and return the whole text."""
        self._close()
        return "".join(self._parts)


@dataclass(frozen=True)
class Extractor:
    """One registered extractor."""

    name: str  # the method recorded in the result
    labels: tuple[str, ...]  # Magika labels it reads
    library: str  # the distribution that does the parsing (``stdlib``...)
    kind: str  # the kind of file for timeouts: text, document, pdf, media, image, mail
    content: ContentKind
    run: Callable[[Path, ExtractContext], ExtractResult]


def result(
    ctx: ExtractContext,
    extractor_name: str,
    library: str,
    builder: TextBuilder | None = None,
    *,
    content: ContentKind = "prose",
    metadata: DocMetadata | None = None,
    raw: Mapping[str, object] | None = None,
    encoding: str | None = None,
    bytes_in: int = 0,
    truncated: bool = False,
) -> ExtractResult:
    """Assemble an :class:`ExtractResult` from a builder and the job context."""
    if builder is not None:
        text = builder.build()
        segments, headings = builder.segments, builder.headings
        truncated = truncated or builder.truncated
    else:
        text, segments, headings = "", [], []
    return ExtractResult(
        text=text,
        segments=segments,
        headings=headings,
        metadata=DocMetadata() if metadata is None else metadata,
        raw=clip_raw(raw) if raw else {},
        parts=list(ctx.parts),
        content=content if text and not text.isspace() else "none",  # no copy of the text
        method=extractor_name,
        library=library,
        library_version=library_version(library),
        encoding=encoding,
        truncated=truncated,
        bytes_in=bytes_in,
        warnings=list(ctx.warnings),
    )


__all__ = [
    "ExtractContext",
    "Extractor",
    "TextBuilder",
    "library_version",
    "read_head",
    "result",
]
