"""The typed result of extracting one artifact.

:class:`ExtractResult` is what an extractor returns inside the worker process: the text (with
its page / slide / sheet / message boundaries as :class:`Segment` offsets and its headings as
:class:`Heading` offsets), a typed metadata core (:class:`DocMetadata`) plus the raw
key/values, the embedded parts written to the job's spool folder, the method and library
version, and warnings. :class:`ExtractSummary` is what travels on in events and is sealed into
the voxel's ``traits["extract"]``: everything but the text, which is stored once in the
object store and named by ``text_ref``.

This module imports only pydantic: event data (:mod:`thunderline.eventdata`) uses it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: What a segment of the text is.
SegmentKind = Literal["page", "slide", "sheet", "section", "message", "chapter", "cue", "event"]
#: What the text is, for routing (code and config skip named-entity recognition by default).
ContentKind = Literal["prose", "code", "config", "data", "none"]

#: Most segments an :class:`ExtractSummary` lists (the rest are counted).
MAX_SUMMARY_SEGMENTS = 512
#: Most headings an :class:`ExtractSummary` lists.
MAX_SUMMARY_HEADINGS = 256
#: Most raw metadata keys kept, and the longest value (characters).
MAX_RAW_KEYS = 128
MAX_RAW_VALUE = 512
#: Most warnings kept.
MAX_WARNINGS = 32
#: Control characters other than tab and newline (dropped from raw metadata values).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Segment(_Model):
    """A page, slide, sheet, message... of the text: ``text[start:end]``."""

    kind: SegmentKind
    index: int = Field(ge=0, description="0-based position among segments of its kind.")
    start: int = Field(ge=0, description="First character (offset into the text).")
    end: int = Field(ge=0, description="One past the last character.")
    title: str | None = Field(None, description="Slide title, sheet name, chapter title.")


class Heading(_Model):
    """A heading of the document kept as structure (Markdown ``## Contents`` -> level 2)."""

    level: int = Field(ge=1, le=9)
    text: str
    start: int = Field(ge=0, description="Offset of the heading's line in the text.")


class GeoPoint(_Model):
    """Where a photo was taken (EXIF GPS), WGS 84 degrees."""

    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    alt_m: float | None = None


class DocMetadata(_Model):
    """The typed core of an artifact's metadata (every field optional)."""

    title: str | None = None
    authors: list[str] = Field(default_factory=list)
    subject: str | None = None
    created: datetime | None = None
    modified: datetime | None = None
    language: str | None = Field(None, description="Language the file declares (a hint).")
    page_count: int | None = Field(None, ge=0, description="Pages, slides or sheets.")
    width: int | None = Field(None, ge=0, description="Pixels (images, video).")
    height: int | None = Field(None, ge=0)
    duration_s: float | None = Field(None, ge=0.0, description="Audio and video length.")
    gps: GeoPoint | None = None
    software: str | None = Field(None, description="Producer / generator / camera model.")

    def is_empty(self) -> bool:
        """Whether no field is set (every field at its default)."""
        return self == DocMetadata()


class OcrInfo(_Model):
    """How OCR text was made: engine, confidences, what is low-confidence."""

    engine: str
    version: str
    mean_confidence: float = Field(ge=0.0, le=1.0)
    lines: int = Field(ge=0)
    low_confidence_lines: int = Field(ge=0)
    words: int = Field(0, ge=0)
    low_confidence_words: int = Field(0, ge=0)
    threshold: float = Field(
        ge=0.0, le=1.0, description="Lines and words below it are marked low-confidence."
    )


class EmbeddedPart(_Model):
    """A document inside the artifact (an e-mail attachment, an object in an office file).

    In the worker the bytes are written to ``spool`` (a file name inside the job's spool
    folder); the stage puts them into the object store and fills ``sha256``.
    """

    index: int = Field(ge=0)
    name: str
    size: int = Field(ge=0)
    kind: Literal["attachment", "embedded"] = "attachment"
    mime: str | None = None
    spool: str | None = Field(None, description="File name in the spool folder (worker only).")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class ExtractResult(_Model):
    """Everything taken from one artifact (the worker's answer)."""

    text: str = ""
    segments: list[Segment] = Field(default_factory=list)
    headings: list[Heading] = Field(default_factory=list)
    metadata: DocMetadata = Field(default_factory=DocMetadata)
    raw: dict[str, str] = Field(default_factory=dict, description="Raw metadata key/values.")
    parts: list[EmbeddedPart] = Field(default_factory=list)
    content: ContentKind = "none"
    method: str = Field(description="The extractor, e.g. `docx`, `pdf`, `markdown`.")
    library: str = Field(description="The library that parsed it (`stdlib` for Python's own).")
    library_version: str
    encoding: str | None = None
    truncated: bool = False
    bytes_in: int = Field(0, ge=0)
    ocr: OcrInfo | None = None
    warnings: list[str] = Field(default_factory=list)


class ExtractSummary(_Model):
    """An extraction result without its text, which is stored once (``text_ref``).

    It is ``data["extract"]`` of ``system.extract.completed`` and ``traits["extract"]`` of the
    voxel.
    """

    text_ref: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")] | None = Field(
        None, description="The extracted text (UTF-8) in the object store; None: no text."
    )
    text_bytes: int = Field(0, ge=0)
    chars: int = Field(0, ge=0)
    content: ContentKind = "none"
    segments: list[Segment] = Field(default_factory=list)
    segments_total: int = Field(0, ge=0)
    headings: list[Heading] = Field(default_factory=list)
    metadata: DocMetadata = Field(default_factory=DocMetadata)
    raw: dict[str, str] = Field(default_factory=dict)
    parts: list[EmbeddedPart] = Field(default_factory=list)
    method: str
    library: str
    library_version: str
    encoding: str | None = None
    truncated: bool = False
    bytes_in: int = Field(0, ge=0)
    ocr: OcrInfo | None = None
    warnings: list[str] = Field(default_factory=list)
    duration_ms: float = Field(0.0, ge=0.0, description="Time in the worker.")

    @property
    def text_sha256(self) -> str | None:
        """The SHA-256 hex of the stored text (from ``text_ref``), or None when there is none."""
        return self.text_ref.partition(":")[2] if self.text_ref else None

    def info(self) -> dict[str, Any]:
        """The NLP event's ``extraction`` object (compatible with the former in-process one)."""
        pages = sum(1 for s in self.segments if s.kind == "page") or self.metadata.page_count
        out: dict[str, Any] = {
            "method": self.method,
            "encoding": self.encoding,
            "truncated": self.truncated,
            "bytes_in": self.bytes_in,
            "chars": self.chars,
        }
        if pages is not None and self.method == "pdf":
            out["pages"] = pages
        return out


def summarize(
    result: ExtractResult, text_ref: str | None, parts: list[EmbeddedPart], duration_ms: float
) -> ExtractSummary:
    """The summary of ``result`` once its text and parts are stored."""
    text_bytes = len(result.text.encode("utf-8", "surrogatepass")) if result.text else 0
    return ExtractSummary(
        text_ref=text_ref,
        text_bytes=text_bytes,
        chars=len(result.text),
        content=result.content,
        segments=result.segments[:MAX_SUMMARY_SEGMENTS],
        segments_total=len(result.segments),
        headings=result.headings[:MAX_SUMMARY_HEADINGS],
        metadata=result.metadata,
        raw=clip_raw(result.raw),
        parts=[p.model_copy(update={"spool": None}) for p in parts],
        method=result.method,
        library=result.library,
        library_version=result.library_version,
        encoding=result.encoding,
        truncated=result.truncated,
        bytes_in=result.bytes_in,
        ocr=result.ocr,
        warnings=result.warnings[:MAX_WARNINGS],
        duration_ms=round(duration_ms, 3),
    )


def clip_raw(raw: dict[str, Any]) -> dict[str, str]:
    """``raw`` cut to size: at most :data:`MAX_RAW_KEYS` keys, each value a short string.

    Each value is a string of at most :data:`MAX_RAW_VALUE` characters (control characters other
    than tab/newline dropped).
    """
    out: dict[str, str] = {}
    for key, value in raw.items():
        if len(out) >= MAX_RAW_KEYS:
            break
        if value is None:
            continue
        text = value if isinstance(value, str) else str(value)
        if not text.isprintable():  # the common case (printable) costs one C call
            text = _CONTROL.sub("", text)
        if not text.strip():
            continue
        out[str(key)[:128]] = text[:MAX_RAW_VALUE]
    return out


__all__ = [
    "ContentKind",
    "DocMetadata",
    "EmbeddedPart",
    "ExtractResult",
    "ExtractSummary",
    "GeoPoint",
    "Heading",
    "OcrInfo",
    "Segment",
    "SegmentKind",
    "summarize",
]
