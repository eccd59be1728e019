"""``NlpResult``: what the NLP stage reports for one document (JSON schema version 1.1).

Offsets (``start``, ``end``) are character offsets into the processed text (Python ``str``
indices, end exclusive). The schema is forward compatible: a 1.0 reader accepts any ``1.x``
result and keeps fields it does not know (``extra="allow"``), so a newer worker can add fields
without breaking older readers. A different major version is refused.

Worker protocol lines (JSON, one per line):

- request ``{"version": "1.1", "doc_id": str, "text": str, "lang": str | null}`` (one document)
- batch request (1.1) ``{"version": "1.1", "timeout_s": float, "batch": [{"doc_id", "text",
  "lang"}, ...]}`` (``timeout_s`` optional: the batch's budget before the worker redoes it one
  document at a time)
- answer: one line per document, in request order: an ``NlpResult`` or
  ``{"version": "1.1", "doc_id": str, "error": {"kind", "message"}}``

Version history: 1.0 one document per request line; 1.1 adds the batch request (the worker
runs ``nlp.pipe`` over it), the ready line's ``version`` (the pool sends batches only to a
worker that says 1.1 or later) and the result fields ``chunks`` and ``batch_docs``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION: Final = "1.1"
#: The first protocol version with batch requests.
BATCH_VERSION: Final = (1, 1)
#: ISO 639-1 code reported when a text has no language (empty, emoji, digits only).
UNDETERMINED: Final = "und"


def _check_major(value: str) -> str:
    major = value.split(".", 1)[0]
    if major != SCHEMA_VERSION.split(".", 1)[0]:
        raise ValueError(f"unsupported schema version {value!r} (reader is {SCHEMA_VERSION})")
    return value


class Span(BaseModel):
    """A stretch of the text: a sentence or a noun chunk."""

    model_config = ConfigDict(extra="allow", frozen=True)

    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Entity(Span):
    """A named entity with its spaCy label (PERSON, ORG, GPE, DATE, ...)."""

    label: str


class NlpResult(BaseModel):
    """The analysis of one document (schema version 1.1).

    Attributes:
        version: Schema version; any ``1.x`` is read by this model.
        doc_id: The caller's id for the document.
        lang: Detected (or given) ISO 639-1 language, ``und`` when there is none.
        lang_score: The language detector's probability for ``lang``.
        pipeline: The spaCy pipeline that processed the text (``name version``).
        pipeline_lang: The pipeline's language; differs from ``lang`` on a fallback.
        entities: Named entities.
        noun_chunks: Base noun phrases.
        sentences: Sentences.
        confidence: 0..1, how much to trust the analysis: the language score when the pipeline
            speaks the document's language, a quarter of it on a fallback, 0 with no language.
        chars: Characters processed.
        truncated: Whether the text was cut to the worker's limit first.
        duration_ms: Worker-side processing time (in a batch: the batch's time shared out
            by characters; for a chunked text: the sum over its chunks).
        chunks: Pieces the text was split into (1.1; 1 when it was not split).
        batch_docs: Documents in the worker batch this one was processed with (1.1).
        entities_skipped: Set when the text is confidently in another language than the
            pipeline's: entities and noun chunks are left out (they would be noise).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    version: str = SCHEMA_VERSION
    doc_id: str
    lang: str
    lang_score: float = Field(0.0, ge=0.0, le=1.0)
    pipeline: str = ""
    pipeline_lang: str = "en"
    entities: list[Entity] = Field(default_factory=list)
    noun_chunks: list[Span] = Field(default_factory=list)
    sentences: list[Span] = Field(default_factory=list)
    confidence: float = Field(ge=0.0, le=1.0)
    chars: int = Field(0, ge=0)
    truncated: bool = False
    duration_ms: float = Field(0.0, ge=0.0)
    chunks: int = Field(1, ge=1)
    batch_docs: int = Field(1, ge=1)
    entities_skipped: str | None = Field(
        None,
        description="Why there are no entities: the text is confidently in another language "
        "than the pipeline's (sentences and language only).",
    )

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        return _check_major(value)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (extra fields from newer writers included)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, line: str | bytes) -> NlpResult:
        """Read one result line (raises ``ValueError`` when it is not a 1.x result)."""
        return cls.model_validate_json(line)


class ReplyError(BaseModel):
    """What went wrong in the worker: ``kind`` (timeout, parse, nlp) and a message."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str
    message: str = ""


class NlpErrorReply(BaseModel):
    """A worker's answer for a document it could not process."""

    model_config = ConfigDict(extra="allow", frozen=True)

    version: str = SCHEMA_VERSION
    doc_id: str
    error: ReplyError

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        return _check_major(value)


Reply = NlpResult | NlpErrorReply


def parse_reply(line: bytes | str) -> Reply:
    """Decode one worker answer line into a result or an error reply.

    Raises:
        ValueError: the line is not JSON, not an object, or fits neither shape.
    """
    try:
        raw = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"answer is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"answer is a JSON {type(raw).__name__}, not an object")
    try:
        if "error" in raw:
            return NlpErrorReply.model_validate(raw)
        return NlpResult.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"answer does not fit schema {SCHEMA_VERSION}: {exc}") from exc


def request_line(doc_id: str, text: str, lang: str | None = None) -> bytes:
    """Encode one request for the worker (a single line, newline-terminated)."""
    payload = {"version": SCHEMA_VERSION, "doc_id": doc_id, "text": text, "lang": lang}
    return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"


def request_item(doc_id: str, text: str, lang: str | None = None) -> bytes:
    """Encode one document of a batch request (a JSON object, no newline)."""
    payload = {"doc_id": doc_id, "text": text, "lang": lang}
    return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")


def batch_line(items: Sequence[bytes], timeout_s: float | None = None) -> bytes:
    """Encode a batch request (1.1) from :func:`request_item` encodings.

    ``timeout_s`` is the batch's time budget in the worker (default: one document's timeout).
    """
    head = b'{"version": "' + SCHEMA_VERSION.encode() + b'", '
    if timeout_s is not None:
        head += b'"timeout_s": ' + repr(float(timeout_s)).encode() + b", "
    return head + b'"batch": [' + b", ".join(items) + b"]}\n"


def supports_batches(version: object) -> bool:
    """Whether a worker announcing ``version`` on its ready line understands batch requests."""
    try:
        major, minor = (int(part) for part in str(version).split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= BATCH_VERSION and major == BATCH_VERSION[0]
