"""Office documents and e-books: OOXML (docx, pptx, xlsx), ODF (odt, ods, odp) and EPUB.

- **docx**: python-docx (paragraphs in body order with tables, heading styles as headings,
  core properties as metadata); **pptx**: python-pptx (one ``slide`` segment per slide, its
  title, text frames, tables and notes); **xlsx**: openpyxl in read-only mode (one ``sheet``
  segment per sheet, cell values row by row, cached values of formulas).
- **ODF** and **EPUB** are zip files of XML: read here with zipfile + lxml (``content.xml`` /
  ``meta.xml``; the EPUB package document's spine in reading order, each chapter through the
  HTML reader). odfpy, the Python ODF library, is unmaintained since 2020 and ships no wheel.
- Objects embedded in OOXML and ODF files become embedded parts (child artifacts) under the
  job's limits: ``word/``, ``ppt/``, ``xl/embeddings/*`` as they are; an ODF ``Object N/``
  sub-document (a spreadsheet in a text document...) rebuilt as an ODF package of its own.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from thunderline.extract.base import ExtractContext, TextBuilder, result
from thunderline.extract.errors import ExtractionError
from thunderline.extract.result import ContentKind, DocMetadata, ExtractResult

#: Zip members (OOXML, ODF) that are embedded documents, by folder prefix.
_EMBED_PREFIXES = ("word/embeddings/", "ppt/embeddings/", "xl/embeddings/")
#: A zip member bigger than this many times the whole file is a bomb, not a document.
_MAX_RATIO = 200


def _zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ExtractionError(f"not a readable zip container: {exc}") from exc


def _check_bomb(zf: zipfile.ZipFile, path: Path) -> None:
    size = max(path.stat().st_size, 1)
    total = sum(info.file_size for info in zf.infolist())
    if total > max(size * _MAX_RATIO, 64 * 1024 * 1024):
        raise ExtractionError(
            f"container expands to {total} bytes ({total // size}:1): refused as a zip bomb"
        )


#: ODF media type -> extension of a sub-document saved as a file of its own.
_ODF_EXTENSIONS = {
    "application/vnd.oasis.opendocument.text": ".odt",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
    "application/vnd.oasis.opendocument.presentation": ".odp",
    "application/vnd.oasis.opendocument.graphics": ".odg",
    "application/vnd.oasis.opendocument.chart": ".odc",
    "application/vnd.oasis.opendocument.formula": ".odf",
}
_MANIFEST_NS = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"


def _odf_media_types(zf: zipfile.ZipFile) -> dict[str, str]:
    """``full-path`` -> ``media-type`` of the package's manifest (empty if unreadable)."""
    from lxml import etree

    try:
        info = zf.getinfo("META-INF/manifest.xml")
        if info.file_size > 4 * 1024 * 1024:
            return {}
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        root = etree.fromstring(zf.read(info), parser)
    except (KeyError, etree.XMLSyntaxError, zipfile.BadZipFile, OSError):
        return {}
    path, media = f"{{{_MANIFEST_NS}}}full-path", f"{{{_MANIFEST_NS}}}media-type"
    return {e.get(path, ""): e.get(media, "") for e in root.iter(f"{{{_MANIFEST_NS}}}file-entry")}


def _odf_subdocument(
    zf: zipfile.ZipFile, folder: str, infos: list[zipfile.ZipInfo], media: str, limit: int
) -> bytes | None:
    """The ODF object in ``folder/`` as a package of its own (None past ``limit`` bytes).

    Its own content.xml, styles, pictures and objects, ``mimetype`` first and stored, and a
    manifest.
    """
    import io

    if sum(info.file_size for info in infos) > limit:
        return None
    out = io.BytesIO()
    entries = []
    with zipfile.ZipFile(out, "w") as sub:
        sub.writestr(zipfile.ZipInfo("mimetype"), media)
        for info in infos:
            inner = info.filename[len(folder) + 1 :]
            if not inner or inner == "mimetype" or inner.startswith("META-INF/"):
                continue
            sub.writestr(inner, zf.read(info), zipfile.ZIP_DEFLATED)
            entries.append(inner)
        lines = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<manifest:manifest xmlns:manifest="{_MANIFEST_NS}" manifest:version="1.2">',
            f' <manifest:file-entry manifest:full-path="/" manifest:media-type="{media}"/>',
        ]
        lines += [
            f' <manifest:file-entry manifest:full-path="{_xml_attr(e)}" manifest:media-type=""/>'
            for e in entries
        ]
        lines.append("</manifest:manifest>")
        sub.writestr("META-INF/manifest.xml", "\n".join(lines), zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _xml_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _embedded_parts(zf: zipfile.ZipFile, ctx: ExtractContext, odf: bool = False) -> None:
    """Objects embedded in an OOXML or ODF package, as embedded parts (child artifacts).

    OOXML: every member under ``word/``, ``ppt/`` or ``xl/embeddings/`` (an embedded workbook
    is an ``.xlsx``, a foreign object an ``oleObject1.bin`` compound file). ODF: an ``Object N``
    member that is a file (a foreign OLE object) is kept as it is; an ``Object N/`` folder is
    an ODF document of its own (a spreadsheet in a text...) and becomes one, typed by the
    manifest (``.ods``, ``.odt``...). ``ObjectReplacements/`` (preview images) are skipped.
    """
    if not odf:
        for info in zf.infolist():
            if not info.is_dir() and info.filename.startswith(_EMBED_PREFIXES):
                with zf.open(info) as handle:
                    data = handle.read(ctx.max_part_bytes + 1)
                _ooxml_part(info.filename, data, ctx)
        return
    folders: dict[str, list[zipfile.ZipInfo]] = {}
    for info in zf.infolist():
        name = info.filename
        top = name.split("/", 1)[0]
        if info.is_dir() or not top.startswith("Object "):
            continue
        if "/" not in name:  # a foreign (OLE) object stored as one file
            with zf.open(info) as handle:
                data = handle.read(ctx.max_part_bytes + 1)
            ctx.add_part(name, data, kind="embedded")
        else:
            folders.setdefault(top, []).append(info)
    if not folders:
        return
    types = _odf_media_types(zf)
    for folder, infos in sorted(folders.items()):
        ctx.progress()
        media = types.get(f"{folder}/", "")
        names = {info.filename[len(folder) + 1 :] for info in infos}
        if "content.xml" not in names or not media.startswith("application/"):
            for info in infos:  # not a sub-document: its files as they are
                with zf.open(info) as handle:
                    ctx.add_part(
                        info.filename, handle.read(ctx.max_part_bytes + 1), kind="embedded"
                    )
            continue
        room = ctx.max_part_bytes - sum(p.size for p in ctx.parts)
        package = _odf_subdocument(zf, folder, infos, media, room)
        if package is None:
            ctx.warn(f"embedded object {folder!r} exceeds the parts' byte budget: not kept")
            continue
        ext = _ODF_EXTENSIONS.get(media, ".odt")
        ctx.add_part(f"{folder}{ext}", package, kind="embedded")


def _ooxml_part(name: str, data: bytes, ctx: ExtractContext) -> None:
    """One OOXML embedding as a part, a compound file (``oleObject1.bin``) unwrapped first.

    A packaged file comes out as itself, an embedded workbook as ``oleObject1.xls``.
    """
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" and len(data) <= ctx.max_part_bytes:
        from thunderline.extract.formats.legacy import ole_object

        name, data = ole_object(data, name, ctx)
    ctx.add_part(name, data, kind="embedded")


def _package_parts(package: Any, ctx: ExtractContext) -> None:
    """Embedded objects of an OOXML package python-docx / python-pptx has already read.

    Their blobs are in memory: the zip is not opened a second time.
    """
    for part in package.iter_parts():
        name = str(part.partname).lstrip("/")
        if name.startswith(_EMBED_PREFIXES):
            _ooxml_part(name, part.blob[: ctx.max_part_bytes + 1], ctx)


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


#: The core-property fields read (python-docx / python-pptx names, then openpyxl's).
_CORE_FIELDS = (
    "title",
    "author",
    "subject",
    "keywords",
    "category",
    "comments",
    "last_modified_by",
    "language",
    "created",
    "modified",
    "revision",
    "identifier",
    "version",
    "creator",
    "lastModifiedBy",
)
#: ``docProps/core.xml`` children -> the python-docx / python-pptx property they back.
_CORE_CHILDREN = {
    "{http://purl.org/dc/elements/1.1/}title": "title",
    "{http://purl.org/dc/elements/1.1/}creator": "author",
    "{http://purl.org/dc/elements/1.1/}subject": "subject",
    "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}keywords": "keywords",
    "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}category": "category",
    "{http://purl.org/dc/elements/1.1/}description": "comments",
    "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}lastModifiedBy": (
        "last_modified_by"
    ),
    "{http://purl.org/dc/elements/1.1/}language": "language",
    "{http://purl.org/dc/terms/}created": "created",
    "{http://purl.org/dc/terms/}modified": "modified",
    "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}revision": "revision",
    "{http://purl.org/dc/elements/1.1/}identifier": "identifier",
    "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}version": "version",
}
_W3CDTF_FULL = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)([+-]\d\d:\d\d|Z)?")


def _ooxml_core(props: Any) -> dict[str, Any] | None:
    """The core properties of a python-docx / python-pptx package in one pass over core.xml.

    Each property getter searches the element again and each date one tries four
    ``strptime`` formats (a tenth of a small pptx's time went there). The values are those the
    getters return: text ``""`` when absent, dates through the library's own W3CDTF reading
    (the common full form parsed here the same way), revision an int (0 when absent or
    invalid). None when ``props`` is not such an object (openpyxl).
    """
    element = getattr(props, "_element", None)
    parse = getattr(element, "_parse_W3CDTF_to_datetime", None)
    if element is None or parse is None:
        return None
    found: dict[str, Any] = {}
    for child in element:
        name = _CORE_CHILDREN.get(child.tag) if isinstance(child.tag, str) else None
        if name is not None and name not in found:
            found[name] = child.text
    values: dict[str, Any] = dict.fromkeys(_CORE_FIELDS)
    for name in _CORE_FIELDS[:13]:
        text = found.get(name)
        if name in ("created", "modified"):
            values[name] = None if name not in found else _w3cdtf(element, parse, text)
        elif name == "revision":
            try:
                values[name] = max(int(str(text)), 0) if name in found else 0
            except ValueError:
                values[name] = 0
        else:
            values[name] = text or ""
    return values


def _w3cdtf(element: Any, parse: Callable[[str], datetime], text: str | None) -> datetime | None:
    """A core.xml date as python-docx / python-pptx read it (None when unreadable)."""
    match = _W3CDTF_FULL.fullmatch(text or "")
    try:
        if match is None:
            return parse(text)  # type: ignore[arg-type]  # partial dates, odd forms
        moment = datetime.fromisoformat(match.group(1))
    except (ValueError, TypeError):
        return None
    offset = match.group(2)
    if offset and len(offset) == 6:
        moment = element._offset_dt(moment, offset)
    return moment.replace(tzinfo=UTC) if _w3cdtf_aware(type(element).__module__) else moment


@cache
def _w3cdtf_aware(library_module: str) -> bool:
    """Whether the library marks the dates it reads as UTC (python-docx) or not (python-pptx)."""
    import importlib

    element_class = importlib.import_module(library_module).CT_CoreProperties
    return element_class._parse_W3CDTF_to_datetime("2000-01-01T00:00:00Z").tzinfo is not None


def _core_meta(props: Any, pages: int | None) -> tuple[DocMetadata, dict[str, Any]]:
    """Typed and raw metadata from python-docx / python-pptx / openpyxl core properties."""
    values = _ooxml_core(props)
    if values is None:
        # each read of a date property re-parses its text: read once, keep the value
        values = {name: getattr(props, name, None) for name in _CORE_FIELDS}
    raw: dict[str, Any] = {}
    for name, value in values.items():
        if value not in (None, ""):
            raw[name] = value.isoformat() if isinstance(value, datetime) else value
    author = raw.get("author") or raw.get("creator")
    meta = DocMetadata(
        title=raw.get("title") or None,
        authors=[a.strip() for a in str(author).split(";") if a.strip()] if author else [],
        subject=raw.get("subject") or None,
        created=_when(values["created"]),
        modified=_when(values["modified"]),
        language=raw.get("language") or None,
        page_count=pages,
    )
    return meta, raw


# ---- docx -----------------------------------------------------------------------------------
def _docx_styles(document: Any) -> Callable[[str | None], str]:
    """Paragraph style id -> UI name (``Heading 1``), each distinct id looked up once.

    ``Paragraph.style`` searches the style part with XPath on every call (a third of a
    small docx's time), and listing every style of the template costs as much again.
    """
    from docx.styles import BabelFish

    cache: dict[str | None, str] = {}

    def name(style_id: str | None) -> str:
        found = cache.get(style_id)
        if found is None:
            if style_id is None:
                # The document's default paragraph style ("Normal"): never a heading, and
                # finding it scans every style of the template.
                found = ""
            else:
                element = document.styles.element.get_by_id(style_id)
                found = BabelFish.internal2ui(element.name_val or "") if element is not None else ""
            cache[style_id] = found
        return found

    return name


def extract_docx(path: Path, ctx: ExtractContext) -> ExtractResult:
    """Word ``.docx`` through **python-docx**: paragraphs and tables in document order.

    ``Heading N`` and ``Title`` styles become headings; core properties are the metadata;
    embedded objects are kept as parts.

    Raises:
        ExtractionError: python-docx cannot open the file.
    """
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors...
        raise ExtractionError(f"cannot read docx: {type(exc).__name__}: {exc}") from exc
    builder = TextBuilder(ctx.max_text_bytes)
    style_name = _docx_styles(document)
    for n, block in enumerate(document.iter_inner_content()):
        if builder.full:
            break
        if n % 200 == 0:
            ctx.progress()
        if isinstance(block, Paragraph):
            style = style_name(block._p.style)  # the pStyle id, resolved once per id
            text = block.text
            if style.startswith("Heading") and style[7:].strip().isdigit():
                builder.heading(int(style[7:].strip()), text)
            elif style == "Title":
                builder.heading(1, text)
            else:
                builder.line(text)
        elif isinstance(block, Table):
            for row in block.rows:
                cells = [" ".join(cell.text.split()) for cell in row.cells]
                builder.line(" | ".join(dict.fromkeys(c for c in cells if c)))
    for section in document.sections:
        for part in (section.header, section.footer):
            if part is not None and not part.is_linked_to_previous:
                for paragraph in part.paragraphs:
                    builder.line(paragraph.text)
    meta, raw = _core_meta(document.core_properties, None)
    _package_parts(document.part.package, ctx)
    return result(
        ctx, "docx", "python-docx", builder, metadata=meta, raw=raw, bytes_in=path.stat().st_size
    )


# ---- pptx -----------------------------------------------------------------------------------
def extract_pptx(path: Path, ctx: ExtractContext) -> ExtractResult:
    """PowerPoint ``.pptx`` through **python-pptx**: one ``slide`` segment per slide.

    The slide title as a heading, then its shapes' text and its notes; core properties (with
    the slide count) are the metadata; embedded objects are kept as parts.

    Raises:
        ExtractionError: python-pptx cannot open the file.
    """
    from pptx import Presentation

    try:
        deck = Presentation(str(path))
    except Exception as exc:
        raise ExtractionError(f"cannot read pptx: {type(exc).__name__}: {exc}") from exc
    builder = TextBuilder(ctx.max_text_bytes)
    slides = 0
    for slide in deck.slides:
        slides += 1
        ctx.progress()
        title_shape = slide.shapes.title
        title = (
            title_shape.text_frame.text.strip()
            if title_shape is not None and title_shape.has_text_frame
            else None
        )
        builder.segment("slide", title)
        if title:
            builder.heading(2, title)
        for shape in slide.shapes:
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if shape.has_text_frame:
                for paragraph in shape.text_frame.paragraphs:
                    builder.line("".join(run.text for run in paragraph.runs))
            if getattr(shape, "has_table", False) and shape.has_table:
                for row in shape.table.rows:
                    builder.line(" | ".join(" ".join(c.text.split()) for c in row.cells))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            builder.line(slide.notes_slide.notes_text_frame.text)
        if builder.full:
            break
    meta, raw = _core_meta(deck.core_properties, slides)
    _package_parts(deck.part.package, ctx)
    return result(
        ctx, "pptx", "python-pptx", builder, metadata=meta, raw=raw, bytes_in=path.stat().st_size
    )


# ---- xlsx -----------------------------------------------------------------------------------
def extract_xlsx(path: Path, ctx: ExtractContext) -> ExtractResult:
    """Excel ``.xlsx`` through **openpyxl** (read-only, cached values): one segment per sheet.

    Cell values row by row; the workbook properties (with the sheet count) are the metadata;
    the zip is checked against compression bombs and its embedded objects kept as parts.

    Raises:
        ExtractionError: openpyxl cannot open the file.
    """
    import openpyxl

    with _zip(path) as zf:  # one look at the zip for both (it was opened twice more)
        _check_bomb(zf, path)
        _embedded_parts(zf, ctx)
    handle = path.open("rb")  # a file object: openpyxl refuses names without .xlsx
    try:
        book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:
        handle.close()
        raise ExtractionError(f"cannot read xlsx: {type(exc).__name__}: {exc}") from exc
    builder = TextBuilder(ctx.max_text_bytes)
    try:
        sheets = book.sheetnames
        for name in sheets:
            sheet = book[name]
            builder.segment("sheet", name)
            for n, row in enumerate(sheet.iter_rows(values_only=True)):
                if n % 1000 == 0:
                    ctx.progress()
                cells = [" ".join(str(v).split()) for v in row if v is not None and str(v).strip()]
                if cells:
                    builder.line(" | ".join(cells))
                if builder.full:
                    break
            if builder.full:
                break
        meta, raw = _core_meta(book.properties, len(sheets))
    finally:
        book.close()
        handle.close()
    return result(
        ctx,
        "xlsx",
        "openpyxl",
        builder,
        content="data",
        metadata=meta,
        raw=raw,
        bytes_in=path.stat().st_size,
    )


# ---- ODF ------------------------------------------------------------------------------------
_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "meta": "urn:oasis:names:tc:opendocument:xmlns:meta:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
}


def _q(prefix: str, name: str) -> str:
    return f"{{{_NS[prefix]}}}{name}"


def _xml(zf: zipfile.ZipFile, name: str, limit: int) -> Any:
    from lxml import etree

    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.file_size > limit:
        raise ExtractionError(f"{name} is {info.file_size} bytes, over the {limit}-byte limit")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        return etree.fromstring(zf.read(info), parser)
    except etree.XMLSyntaxError as exc:
        raise ExtractionError(f"{name} is not well-formed XML: {exc}") from exc


def _odf_text(node: Any) -> str:
    """The text of an ODF paragraph: text nodes, ``text:s`` spaces, tabs and line breaks."""
    out: list[str] = [node.text or ""]
    for child in node:
        tag = child.tag
        if tag == _q("text", "s"):
            out.append(" " * int(child.get(_q("text", "c"), "1")))
        elif tag == _q("text", "tab"):
            out.append("\t")
        elif tag == _q("text", "line-break"):
            out.append("\n")
        elif tag in (_q("text", "note"), _q("office", "annotation")):
            pass
        else:
            out.append(_odf_text(child))
        out.append(child.tail or "")
    return "".join(out)


def extract_odf(path: Path, ctx: ExtractContext) -> ExtractResult:
    """OpenDocument text, spreadsheet and presentation (content.xml and meta.xml)."""
    with _zip(path) as zf:
        _check_bomb(zf, path)
        limit = max(ctx.max_text_bytes * 64, 64 * 1024 * 1024)
        content = _xml(zf, "content.xml", limit)
        if content is None:
            raise ExtractionError("not an OpenDocument file (no content.xml)")
        meta_doc = _xml(zf, "meta.xml", 4 * 1024 * 1024)
        _embedded_parts(zf, ctx, odf=True)
    body = content.find(_q("office", "body"))
    builder = TextBuilder(ctx.max_text_bytes)
    pages = 0
    kind = "text"
    if body is not None:
        for child in body:
            kind = child.tag.rsplit("}", 1)[-1]
        for n, element in enumerate(body.iter()):
            if builder.full:
                break
            if n % 2000 == 0:
                ctx.progress()
            tag = element.tag
            if tag == _q("table", "table") and kind == "spreadsheet":
                pages += 1
                builder.segment("sheet", element.get(_q("table", "name")))
            elif tag == _q("draw", "page"):
                pages += 1
                builder.segment("slide", element.get(_q("draw", "name")))
            elif tag == _q("text", "h"):
                builder.heading(
                    int(element.get(_q("text", "outline-level"), "1")), _odf_text(element)
                )
            elif tag == _q("text", "p"):
                if element.getparent() is not None and element.getparent().tag == _q(
                    "table", "table-cell"
                ):
                    continue  # cells are read row by row below
                builder.line(_odf_text(element))
            elif tag == _q("table", "table-row"):
                cells = []
                for cell in element.iter(_q("table", "table-cell")):
                    value = " ".join(
                        " ".join(_odf_text(p).split()) for p in cell.iter(_q("text", "p"))
                    )
                    if value.strip():
                        cells.append(value)
                if cells:
                    builder.line(" | ".join(cells))
    raw: dict[str, Any] = {"document_kind": kind}
    meta = DocMetadata()
    if meta_doc is not None:
        office_meta = meta_doc.find(_q("office", "meta"))
        if office_meta is not None:
            for child in office_meta:
                name = child.tag.rsplit("}", 1)[-1]
                if child.text and child.text.strip():
                    raw[name] = child.text.strip()
                if name == "document-statistic":
                    for key, value in child.attrib.items():
                        raw[key.rsplit("}", 1)[-1]] = value
        authors = [raw[k] for k in ("initial-creator", "creator") if raw.get(k)]
        page_count = raw.get("page-count")
        meta = DocMetadata(
            title=raw.get("title"),
            authors=list(dict.fromkeys(authors)),
            subject=raw.get("subject") or raw.get("description"),
            created=_when(raw.get("creation-date")),
            modified=_when(raw.get("date")),
            language=raw.get("language"),
            page_count=int(str(page_count)) if str(page_count or "").isdigit() else (pages or None),
            software=raw.get("generator"),
        )
    content_kind: ContentKind = "data" if kind == "spreadsheet" else "prose"
    return result(
        ctx,
        "odf",
        "lxml",
        builder,
        content=content_kind,
        metadata=meta,
        raw=raw,
        bytes_in=path.stat().st_size,
    )


# ---- EPUB -----------------------------------------------------------------------------------
_OPF = "http://www.idpf.org/2007/opf"
_CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"


def extract_epub(path: Path, ctx: ExtractContext) -> ExtractResult:
    """EPUB 2/3: the package document's spine in reading order, with Dublin Core metadata.

    One ``chapter`` segment per spine item (its first heading as title).
    """
    from thunderline.extract.formats.text import decode_text, html_into

    with _zip(path) as zf:
        _check_bomb(zf, path)
        container = _xml(zf, "META-INF/container.xml", 1024 * 1024)
        if container is None:
            raise ExtractionError("not an EPUB (no META-INF/container.xml)")
        rootfile = container.find(f".//{{{_CONTAINER}}}rootfile")
        if rootfile is None or not rootfile.get("full-path"):
            raise ExtractionError("EPUB container names no package document")
        opf_name = str(rootfile.get("full-path"))
        opf = _xml(zf, opf_name, 8 * 1024 * 1024)
        if opf is None:
            raise ExtractionError(f"EPUB package document {opf_name} is missing")
        base = posixpath.dirname(opf_name)
        manifest = {
            item.get("id"): item.get("href")
            for item in opf.iter(f"{{{_OPF}}}item")
            if item.get("id") and item.get("href")
        }
        raw: dict[str, Any] = {}
        metadata = opf.find(f"{{{_OPF}}}metadata")
        creators: list[str] = []
        if metadata is not None:
            for child in metadata:
                if not isinstance(child.tag, str):
                    continue
                name = child.tag.rsplit("}", 1)[-1]
                if child.text and child.text.strip():
                    if name == "creator":
                        creators.append(child.text.strip())
                    raw.setdefault(name, child.text.strip())
        builder = TextBuilder(ctx.max_text_bytes)
        chapters = 0
        for itemref in opf.iter(f"{{{_OPF}}}itemref"):
            href = manifest.get(itemref.get("idref"))
            if not href or builder.full:
                continue
            member = posixpath.normpath(posixpath.join(base, href.split("#", 1)[0]))
            try:
                data = zf.read(member)
            except KeyError:
                ctx.warn(f"spine item {member} is missing")
                continue
            ctx.progress()
            chapters += 1
            chapter = TextBuilder(ctx.max_text_bytes)
            html_into(chapter, decode_text(data)[0])
            text = chapter.build()
            if not text.strip():
                continue
            builder.segment("chapter", chapter.headings[0].text if chapter.headings else None)
            offset = builder.chars
            for heading in chapter.headings:
                builder.headings.append(replace(heading, start=offset + heading.start))
            builder.text(text)
    meta = DocMetadata(
        title=raw.get("title"),
        authors=creators,
        subject=raw.get("description") or raw.get("subject"),
        created=_when(raw.get("date")),
        language=raw.get("language"),
        page_count=chapters or None,
        software=raw.get("publisher"),
    )
    return result(
        ctx, "epub", "lxml", builder, metadata=meta, raw=raw, bytes_in=path.stat().st_size
    )


__all__ = [
    "extract_docx",
    "extract_epub",
    "extract_odf",
    "extract_pptx",
    "extract_xlsx",
]
