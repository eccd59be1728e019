"""E-mail: RFC 5322 messages (``.eml``) and mbox files, with Python's ``email`` package.

Headers become metadata (Subject -> title, From -> authors, Date -> created; To, Cc,
Message-ID and the rest raw), the body becomes text (``text/plain`` preferred, else the HTML
part through the HTML reader), and every attachment, inline image included, becomes an
embedded part (a child artifact). An mbox (a file starting with ``From ``) gives one
``message`` segment per message. Outlook ``.msg`` files are read by
:mod:`thunderline.extract.formats.legacy` (OLE2, like the other binary Office formats).
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import email.utils
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from thunderline.extract.base import ExtractContext, TextBuilder, result
from thunderline.extract.errors import ExtractionError
from thunderline.extract.result import DocMetadata, ExtractResult

_RAW_HEADERS = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "user-agent",
    "x-mailer",
    "content-language",
)


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _decoded_header(value: str) -> str:
    """A header's value with its RFC 2047 encoded words decoded."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        return value


def _body(message: EmailMessage) -> str:
    from thunderline.extract.formats.text import html_into

    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if part.get_content_type() == "text/html":
        builder = TextBuilder(len(content.encode("utf-8", "surrogatepass")) + 16)
        html_into(builder, content)
        return builder.build()
    return content.replace("\r\n", "\n")


def _attachments(message: EmailMessage, ctx: ExtractContext) -> int:
    count = 0
    for part in message.iter_attachments():
        if not isinstance(part, EmailMessage):
            continue
        ctype = part.get_content_type()  # parsed once: each call re-parses the header
        if ctype.startswith("multipart/"):
            continue
        payload = part.get_payload(decode=True)
        if ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], EmailMessage):
                payload = inner[0].as_bytes(policy=email.policy.default)
        if not isinstance(payload, bytes):
            continue
        name = part.get_filename() or f"attachment-{count + 1}"
        ctx.add_part(name, payload, kind="attachment", mime=ctype)
        count += 1
    return count


def _one(message: EmailMessage, builder: TextBuilder, ctx: ExtractContext) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    # The raw header strings (``get`` runs the policy's structured header parser on each,
    # the costliest step of a small message), RFC 2047 words decoded only where present.
    for name, value in message.raw_items():
        key = name.lower()
        if key in _RAW_HEADERS and key not in raw:
            raw[key] = " ".join(_decoded_header(str(value)).split())
    subject = raw.get("subject")
    if subject:
        builder.heading(1, subject)
    for line in _body(message).split("\n"):
        builder.line(line.rstrip())
    raw["attachments"] = _attachments(message, ctx)
    return raw


def _meta(raw: dict[str, Any]) -> DocMetadata:
    authors = [
        name or addr
        for name, addr in email.utils.getaddresses([raw.get("from", "")])
        if name or addr
    ]
    return DocMetadata(
        title=raw.get("subject"),
        authors=authors,
        created=_date(raw.get("date")),
        language=raw.get("content-language"),
        software=raw.get("user-agent") or raw.get("x-mailer"),
    )


def extract_email(path: Path, ctx: ExtractContext) -> ExtractResult:
    """An RFC 822 message, or an mbox of them (a file starting ``From ``), read with ``email``.

    Headers as metadata, the bodies as text, attachments as embedded parts; message defects
    (at most five) become warnings.

    Raises:
        ExtractionError: the file has no headers: it is not an e-mail message.
    """
    with path.open("rb") as handle:
        head = handle.read(5)
    if head == b"From ":
        return _mbox(path, ctx)
    data = path.read_bytes()
    message = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(message, EmailMessage) or not message.keys():
        raise ExtractionError("not an e-mail message (no headers)")
    builder = TextBuilder(ctx.max_text_bytes)
    raw = _one(message, builder, ctx)
    for defect in message.defects[:5]:
        ctx.warn(f"message defect: {type(defect).__name__}")
    return result(ctx, "email", "stdlib", builder, metadata=_meta(raw), raw=raw, bytes_in=len(data))


def _mbox(path: Path, ctx: ExtractContext) -> ExtractResult:
    import mailbox

    box = mailbox.mbox(str(path), factory=None, create=False)
    builder = TextBuilder(ctx.max_text_bytes)
    first: dict[str, Any] | None = None
    count = 0
    try:
        for key in box.iterkeys():
            ctx.progress()
            message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
            if not isinstance(message, EmailMessage):
                continue
            builder.segment("message", str(message.get("subject") or "") or None)
            raw = _one(message, builder, ctx)
            first = first or raw
            count += 1
            if builder.full:
                break
    finally:
        box.close()
    raw_all: dict[str, Any] = {"messages": count}
    if first:
        raw_all.update({f"first_{k}": v for k, v in first.items()})
    meta = replace(_meta(first or {}), page_count=count, title=None)
    return result(
        ctx, "mbox", "stdlib", builder, metadata=meta, raw=raw_all, bytes_in=path.stat().st_size
    )


__all__ = ["extract_email"]
