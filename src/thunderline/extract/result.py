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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

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


#: How pydantic validates the value types below where a pydantic model holds them
#: (:class:`ExtractSummary`, the event data): unknown keys refused, and an instance built in the
#: worker is validated field by field like a dict would be (``revalidate_instances``), so the
#: summary is where an extractor's values are checked -- once.
_VALUE_CONFIG = ConfigDict(extra="forbid", revalidate_instances="always")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# The types an extractor builds are slotted standard-library dataclasses, not pydantic models:
# building one costs a plain ``__init__`` (a pydantic model validated every field, which was
# most of an extractor's own time on a small file). Their constraints (``Field(ge=0)``...)
# are checked when :func:`summarize` builds the :class:`ExtractSummary` and when the pool
# parses a worker's answer (:func:`parse_result`); their JSON and JSON Schema are what the
# former models gave.
#
# They are not frozen. A frozen ``__init__`` sets each field through ``object.__setattr__``
# (a Segment 0.91 us against 0.34 us; html and pem lost 0.03-0.04 of their benchmark ratio to
# it), and freezing protected nothing that is sealed: summarize() builds the summary's own
# copies (pydantic revalidates every instance into a new one), the voxel seals
# ``summary.model_dump(mode="json")`` -- plain JSON data, not these objects
# (voxel/builder.py) -- and events carry JSON. Freezing was shallow anyway: ``authors``,
# ``segments``, ``raw`` are lists and dicts. Treat them as read-only all the same
# (``dataclasses.replace`` makes a changed copy).


@dataclass(slots=True, kw_only=True)
class Segment:
    """A page, slide, sheet, message... of the text: ``text[start:end]``."""

    __pydantic_config__: ClassVar[ConfigDict] = _VALUE_CONFIG

    kind: SegmentKind
    index: Annotated[int, Field(ge=0, description="0-based position among segments of its kind.")]
    start: Annotated[int, Field(ge=0, description="First character (offset into the text).")]
    end: Annotated[int, Field(ge=0, description="One past the last character.")]
    title: Annotated[str | None, Field(description="Slide title, sheet name, chapter title.")] = (
        None
    )


@dataclass(slots=True, kw_only=True)
class Heading:
    """A heading of the document kept as structure (Markdown ``## Contents`` -> level 2)."""

    __pydantic_config__: ClassVar[ConfigDict] = _VALUE_CONFIG

    level: Annotated[int, Field(ge=1, le=9)]
    text: str
    start: Annotated[int, Field(ge=0, description="Offset of the heading's line in the text.")]


@dataclass(slots=True, kw_only=True)
class GeoPoint:
    """Where a photo was taken (EXIF GPS), WGS 84 degrees."""

    __pydantic_config__: ClassVar[ConfigDict] = _VALUE_CONFIG

    lat: Annotated[float, Field(ge=-90.0, le=90.0)]
    lon: Annotated[float, Field(ge=-180.0, le=180.0)]
    alt_m: float | None = None


@dataclass(slots=True, kw_only=True)
class DocMetadata:
    """The typed core of an artifact's metadata (every field optional)."""

    __pydantic_config__: ClassVar[ConfigDict] = _VALUE_CONFIG

    title: str | None = None
    authors: list[str] = field(default_factory=list)
    subject: str | None = None
    created: datetime | None = None
    modified: datetime | None = None
    language: Annotated[str | None, Field(description="Language the file declares (a hint).")] = (
        None
    )
    page_count: Annotated[int | None, Field(ge=0, description="Pages, slides or sheets.")] = None
    width: Annotated[int | None, Field(ge=0, description="Pixels (images, video).")] = None
    height: Annotated[int | None, Field(ge=0)] = None
    duration_s: Annotated[float | None, Field(ge=0.0, description="Audio and video length.")] = None
    gps: GeoPoint | None = None
    software: Annotated[str | None, Field(description="Producer / generator / camera model.")] = (
        None
    )

    def is_empty(self) -> bool:
        """Whether no field is set (every field at its default)."""
        return self == DocMetadata()


@dataclass(slots=True, kw_only=True)
class OcrInfo:
    """How OCR text was made: engine, confidences, what is low-confidence."""

    __pydantic_config__: ClassVar[ConfigDict] = _VALUE_CONFIG

    engine: str
    version: str
    mean_confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    lines: Annotated[int, Field(ge=0)]
    low_confidence_lines: Annotated[int, Field(ge=0)]
    words: Annotated[int, Field(ge=0)] = 0
    low_confidence_words: Annotated[int, Field(ge=0)] = 0
    threshold: Annotated[
        float,
        Field(ge=0.0, le=1.0, description="Lines and words below it are marked low-confidence."),
    ]


@dataclass(slots=True, kw_only=True)
class EmbeddedPart:
    """A document inside the artifact (an e-mail attachment, an object in an office file).

    In the worker the bytes are written to ``spool`` (a file name inside the job's spool
    folder); the stage puts them into the object store and fills ``sha256``.
    """

    __pydantic_config__: ClassVar[ConfigDict] = _VALUE_CONFIG

    index: Annotated[int, Field(ge=0)]
    name: str
    size: Annotated[int, Field(ge=0)]
    kind: Literal["attachment", "embedded"] = "attachment"
    mime: str | None = None
    spool: Annotated[
        str | None, Field(description="File name in the spool folder (worker only).")
    ] = None
    sha256: Annotated[str | None, Field(pattern=r"^[0-9a-f]{64}$")] = None


@dataclass(slots=True, kw_only=True)
class ExtractResult:
    """Everything taken from one artifact (the worker's answer).

    Not frozen, like the value types it holds: it is the worker's transient answer, never
    sealed or sent on as it is (:func:`summarize` copies its fields into the summary), and a
    frozen ``__init__`` (``object.__setattr__`` per field) cost 1.6 us of its 15 fields on
    every file -- 4 % of a small HTML page's whole extraction (benchmarks/extract.py).
    Treat it as read-only: ``dataclasses.replace`` makes a changed copy.
    """

    __pydantic_config__: ClassVar[ConfigDict] = _VALUE_CONFIG

    text: str = ""
    segments: list[Segment] = field(default_factory=list)
    headings: list[Heading] = field(default_factory=list)
    metadata: DocMetadata = field(default_factory=DocMetadata)
    raw: Annotated[dict[str, str], Field(description="Raw metadata key/values.")] = field(
        default_factory=dict
    )
    parts: list[EmbeddedPart] = field(default_factory=list)
    content: ContentKind = "none"
    method: Annotated[str, Field(description="The extractor, e.g. `docx`, `pdf`, `markdown`.")]
    library: Annotated[
        str, Field(description="The library that parsed it (`stdlib` for Python's own).")
    ]
    library_version: str
    encoding: str | None = None
    truncated: bool = False
    bytes_in: Annotated[int, Field(ge=0)] = 0
    ocr: OcrInfo | None = None
    warnings: list[str] = field(default_factory=list)


@cache
def _result_adapter() -> TypeAdapter[ExtractResult]:
    return TypeAdapter(ExtractResult)


def parse_result(data: object) -> ExtractResult:
    """A worker's answer (the JSON object of :func:`result_json`) as a validated result.

    Raises:
        pydantic.ValidationError: a field is missing, unknown or out of its bounds.
    """
    return _result_adapter().validate_python(data)


def result_json(found: ExtractResult) -> str:
    """``found`` as one JSON object (pydantic-core, one pass).

    Raises:
        ValueError: text JSON cannot carry as it is (a lone surrogate): use :func:`result_dict`.
    """
    # No serializer warning for a value of the wrong type: it is written as it is and the
    # supervisor's parse (parse_result) refuses it, naming the field.
    return _result_adapter().dump_json(found, warnings=False).decode("utf-8")


def result_dict(found: ExtractResult) -> dict[str, Any]:
    """``found`` as a JSON-ready dict (strings kept as they are, lone surrogates included)."""
    out: dict[str, Any] = _result_adapter().dump_python(found, mode="json", warnings=False)
    return out


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
        parts=[replace(p, spool=None) for p in parts],
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


def clip_raw(raw: Mapping[str, Any]) -> dict[str, str]:
    """``raw`` cut to size: at most :data:`MAX_RAW_KEYS` keys, each value a short string.

    Each value is a string of at most :data:`MAX_RAW_VALUE` characters (control characters other
    than tab/newline dropped).
    """
    out: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if len(out) >= MAX_RAW_KEYS:
            break
        text = value if type(value) is str else str(value)
        if not text.isprintable():  # the common case (printable) costs one C call
            text = _CONTROL.sub("", text)
        if not text or text.isspace():  # blank: no copy made to find out (was strip())
            continue
        name = key if type(key) is str else str(key)
        out[name if len(name) <= 128 else name[:128]] = (
            text if len(text) <= MAX_RAW_VALUE else text[:MAX_RAW_VALUE]
        )
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
    "parse_result",
    "result_dict",
    "result_json",
    "summarize",
]
