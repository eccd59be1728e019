"""PDF: text per page (one ``page`` segment each) and the document information dictionary.

Two readers, measured side by side by ``benchmarks/extract_pdf.py`` (figures in
docs/ARCHITECTURE.md): **pypdfium2** (the PDFium engine of Chromium, BSD/Apache) is the one the
pipeline uses; **pypdf** (pure Python) is kept as the fallback when PDFium refuses a file.
PDFium is native code: a crash in it kills the worker process, which the supervisor turns into
one dead-lettered file (:mod:`thunderline.extract.pool`).

Encrypted files are tried with the empty password. Pages without a text layer are counted in
``raw["pages_without_text"]``; OCR (:mod:`thunderline.extract.ocr`) reads them when enabled.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from thunderline.extract.base import ExtractContext, TextBuilder, result
from thunderline.extract.errors import ExtractionError
from thunderline.extract.result import DocMetadata, ExtractResult

_PDF_DATE = re.compile(
    r"^D?:?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?([Zz+\-])?(\d{2})?'?(\d{2})?"
)
#: A page with fewer characters than this has no usable text layer (a scan).
MIN_PAGE_CHARS = 16


def pdf_date(value: Any) -> datetime | None:
    """A PDF date string (``D:20240131120000+01'00'``) as an aware datetime."""
    if not isinstance(value, str):
        return None
    match = _PDF_DATE.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, sign, tzh, tzm = match.groups()
    try:
        tz: timezone = UTC
        if sign in ("+", "-") and tzh:
            offset = timedelta(hours=int(tzh), minutes=int(tzm or 0))
            tz = timezone(offset if sign == "+" else -offset)
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError:
        return None


def _meta(info: dict[str, Any], pages: int) -> DocMetadata:
    author = str(info.get("Author") or "").strip()
    return DocMetadata(
        title=str(info.get("Title") or "").strip() or None,
        authors=[a.strip() for a in re.split(r";|\band\b", author) if a.strip()] if author else [],
        subject=str(info.get("Subject") or "").strip() or None,
        created=pdf_date(info.get("CreationDate")),
        modified=pdf_date(info.get("ModDate")),
        page_count=pages,
        software=str(info.get("Producer") or info.get("Creator") or "").strip() or None,
    )


def _finish(
    ctx: ExtractContext,
    builder: TextBuilder,
    library: str,
    info: dict[str, Any],
    pages: int,
    empty_pages: list[int],
    size: int,
) -> ExtractResult:
    raw: dict[str, Any] = {k: v for k, v in info.items() if isinstance(v, str | int | float)}
    raw["pages"] = pages
    if empty_pages:
        raw["pages_without_text"] = len(empty_pages)
        shown = ", ".join(str(p + 1) for p in empty_pages[:20])
        ctx.warn(f"{len(empty_pages)} page(s) without a text layer (scans?): {shown}")
    return result(ctx, "pdf", library, builder, metadata=_meta(info, pages), raw=raw, bytes_in=size)


def _page_lines(text: str) -> str:
    """A page's lines, right-stripped, blank ones dropped, joined: one builder call per page.

    The same text as one ``builder.line()`` per line, without its per-line work.
    """
    return "\n".join(filter(None, (line.rstrip() for line in text.split("\n"))))


def extract_pdf_pdfium(path: Path, ctx: ExtractContext) -> ExtractResult:
    """Text per page through PDFium."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(str(path), password="")
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ExtractionError("the PDF is encrypted with a password") from exc
        ctx.warn(f"PDFium refused the file ({exc}); read with pypdf")
        return extract_pdf_pypdf(path, ctx)
    try:
        info = {k: v for k, v in document.get_metadata_dict(skip_empty=True).items()}
        builder = TextBuilder(ctx.max_text_bytes)
        pages = len(document)
        empty: list[int] = []
        ocr_infos: list[Any] = []
        low: list[str] = []
        for index in range(pages):
            ctx.progress()
            builder.segment("page")
            page = document[index]
            try:
                textpage = page.get_textpage()
                try:
                    text = textpage.get_text_bounded()
                finally:
                    textpage.close()
            finally:
                page.close()
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if len(text.strip()) < MIN_PAGE_CHARS and ctx.ocr:
                text = _ocr_page(document, index, ctx, ocr_infos, low) or text
            if len(text.strip()) < MIN_PAGE_CHARS:
                empty.append(index)
            builder.line(_page_lines(text))
            if builder.full:
                break
    finally:
        document.close()
    if low:
        info["ocr_low_confidence"] = "; ".join(low)[:2000]
    found = _finish(ctx, builder, "pypdfium2", info, pages, empty, path.stat().st_size)
    if ocr_infos:
        from thunderline.extract import ocr

        found = replace(found, ocr=ocr.merge(ocr_infos))
    return found


#: Rendering scale for OCR (PDF points are 1/72 in: 2.5 is 180 dpi, which Tesseract is told).
OCR_SCALE = 2.5


def _ocr_page(
    document: Any, index: int, ctx: ExtractContext, infos: list[Any], low: list[str]
) -> str:
    """The text of a page without a text layer, by OCR of its rendering."""
    from thunderline.extract import ocr

    problem = ocr.available(ctx.ocr_engine, ctx.ocr_languages)
    if problem is not None:
        ctx.warn(f"OCR skipped: {problem}")
        return ""
    page = document[index]
    try:
        image = page.render(scale=OCR_SCALE).to_pil()
    finally:
        page.close()
    note = ocr.language_note(ctx.ocr_engine, ctx.ocr_languages)
    if note:
        ctx.warn(note)
    lines = ocr.recognise(
        image, ctx.progress, ctx.ocr_engine, languages=ctx.ocr_languages, dpi=72 * OCR_SCALE
    )
    infos.append(ocr.info(lines, ctx.ocr_engine))
    low.extend(ocr.low_confidence_note(lines, index))
    return "\n".join(line.text for line in lines)


def extract_pdf_pypdf(path: Path, ctx: ExtractContext) -> ExtractResult:
    """Text per page through pypdf (pure Python)."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(path.read_bytes()))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("the PDF is encrypted with a password")
        info = {str(k).lstrip("/"): str(v) for k, v in (reader.metadata or {}).items()}
        builder = TextBuilder(ctx.max_text_bytes)
        pages = len(reader.pages)
        empty: list[int] = []
        for index, page in enumerate(reader.pages):
            ctx.progress()
            builder.segment("page")
            text = page.extract_text() or ""
            if len(text.strip()) < MIN_PAGE_CHARS:
                empty.append(index)
            builder.line(_page_lines(text))
            if builder.full:
                break
    except ExtractionError:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files
        raise ExtractionError(f"cannot read PDF: {type(exc).__name__}: {exc}") from exc
    return _finish(ctx, builder, "pypdf", info, pages, empty, path.stat().st_size)


#: The PDF reader the registry uses.
extract_pdf = extract_pdf_pdfium

__all__ = ["extract_pdf", "extract_pdf_pdfium", "extract_pdf_pypdf", "pdf_date"]
