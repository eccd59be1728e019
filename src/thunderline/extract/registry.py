"""The extractors, by Magika label: :func:`extractor_for` is the one lookup.

A label not listed here falls back by Magika's ``is_text``: text is read as plain text of
its group's content kind (code, config, prose), anything else gets :data:`NONE` (an empty
result, no worker round trip). Each extractor names the ``kind`` of file it reads; the
supervisor's total timeout is chosen per kind (``TL_EXTRACT_TIMEOUTS``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from thunderline.extract.base import ExtractContext, Extractor, result
from thunderline.extract.result import ContentKind, ExtractResult

#: Kinds of file, for the per-kind total timeout.
KINDS = ("text", "document", "pdf", "mail", "media", "image", "ocr")

#: Code-group labels that are configuration or data rather than program text.
CONFIG_LABELS = frozenset(
    {
        "ini",
        "toml",
        "yaml",
        "json",
        "jsonl",
        "xml",
        "hcl",
        "textproto",
        "csproj",
        "vcxproj",
        "gitattributes",
        "gitmodules",
        "ignorefile",
        "htaccess",
        "appleplist",
        "rdf",
        "internetshortcut",
        "winregistry",
        "m3u",
        "sum",
        "mum",
        "proteindb",
    }
)


def _lazy(module: str, function: str) -> Callable[[Path, ExtractContext], ExtractResult]:
    """A runner that imports its module at first use (the worker imports only what it needs)."""
    resolved: list[Callable[[Path, ExtractContext], ExtractResult]] = []

    def run(path: Path, ctx: ExtractContext) -> ExtractResult:
        if not resolved:
            import importlib

            found = importlib.import_module(f"thunderline.extract.formats.{module}")
            resolved.append(getattr(found, function))
        return resolved[0](path, ctx)

    run.__name__ = function
    return run


def _none(path: Path, ctx: ExtractContext) -> ExtractResult:
    return result(ctx, "none", "stdlib", None, content="none", bytes_in=path.stat().st_size)


#: The empty extractor (a format without text or metadata we read).
NONE = Extractor("none", (), "stdlib", "text", "none", _none)


def _e(
    name: str,
    labels: Iterable[str],
    library: str,
    kind: str,
    content: ContentKind,
    module: str,
    function: str,
) -> Extractor:
    return Extractor(name, tuple(labels), library, kind, content, _lazy(module, function))


EXTRACTORS: tuple[Extractor, ...] = (
    _e(
        "plain",
        ("txt", "randomtxt", "bib", "diff", "po", "sgml"),
        "charset-normalizer",
        "text",
        "prose",
        "text",
        "extract_plain",
    ),
    _e("markdown", ("markdown",), "markdown-it-py", "text", "prose", "text", "extract_markdown"),
    _e("rst", ("rst",), "docutils", "text", "prose", "text", "extract_rst"),
    _e("latex", ("latex",), "pylatexenc", "text", "prose", "text", "extract_latex"),
    _e("html", ("html", "xhtml", "mht"), "selectolax", "text", "prose", "text", "extract_html"),
    _e("subtitles", ("srt", "vtt"), "stdlib", "text", "prose", "text", "extract_subtitles"),
    _e("calendar", ("ics",), "stdlib", "text", "prose", "text", "extract_calendar"),
    _e("csv", ("csv", "tsv"), "stdlib", "text", "data", "text", "extract_delimited"),
    _e("rtf", ("rtf",), "stdlib", "text", "prose", "text", "extract_rtf"),
    _e(
        "config",
        sorted(CONFIG_LABELS),
        "charset-normalizer",
        "text",
        "config",
        "text",
        "extract_config",
    ),
    _e("docx", ("docx",), "python-docx", "document", "prose", "office", "extract_docx"),
    _e("pptx", ("pptx",), "python-pptx", "document", "prose", "office", "extract_pptx"),
    _e("xlsx", ("xlsx",), "openpyxl", "document", "data", "office", "extract_xlsx"),
    _e("doc", ("doc",), "olefile", "document", "prose", "legacy", "extract_doc"),
    _e("xls", ("xls",), "xlrd", "document", "data", "legacy", "extract_xls"),
    _e("ppt", ("ppt",), "olefile", "document", "prose", "legacy", "extract_ppt"),
    _e("odf", ("odt", "ods", "odp"), "lxml", "document", "prose", "office", "extract_odf"),
    _e("epub", ("epub",), "lxml", "document", "prose", "office", "extract_epub"),
    _e("pdf", ("pdf",), "pypdfium2", "pdf", "prose", "pdf", "extract_pdf"),
    _e("email", ("eml",), "stdlib", "mail", "prose", "mail", "extract_email"),
    _e("msg", ("outlook",), "olefile", "mail", "prose", "legacy", "extract_msg"),
    _e(
        "media",
        ("mp3", "flac", "ogg", "wav", "mp4", "qt", "3gp", "webm", "mkv"),
        "mutagen",
        "media",
        "none",
        "media",
        "extract_audio_video",
    ),
    _e(
        "image",
        ("jpeg", "png", "tiff", "webp", "gif", "bmp", "ico", "jp2", "tga", "icns"),
        "pillow",
        "image",
        "none",
        "media",
        "extract_image",
    ),
    _e(
        "font",
        ("ttf", "otf", "woff", "woff2"),
        "fonttools",
        "media",
        "none",
        "media",
        "extract_font",
    ),
    _e(
        "certificate",
        ("pem", "crt"),
        "cryptography",
        "text",
        "none",
        "media",
        "extract_certificate",
    ),
)

_BY_LABEL: dict[str, Extractor] = {label: ex for ex in EXTRACTORS for label in ex.labels}
_BY_NAME: dict[str, Extractor] = {ex.name: ex for ex in EXTRACTORS}
_CODE = Extractor("code", (), "charset-normalizer", "text", "code", _lazy("text", "extract_code"))
_BY_NAME["code"] = _CODE
_BY_NAME["none"] = NONE


def extractor_for(label: str, group: str = "", is_text: bool = False) -> Extractor:
    """The extractor for a Magika label.

    Fallback: plain text of the group's kind when the label is text, else :data:`NONE`.
    """
    found = _BY_LABEL.get(label)
    if found is not None:
        return found
    if not is_text:
        return NONE
    if group == "code":
        return _CODE
    return _BY_NAME["plain"]


def by_name(name: str) -> Extractor:
    """An extractor by its method name (the worker receives names, not functions)."""
    return _BY_NAME[name]


def register(extractor: Extractor) -> None:
    """Add or replace an extractor (its labels now map to it)."""
    _BY_NAME[extractor.name] = extractor
    for label in extractor.labels:
        _BY_LABEL[label] = extractor


def labels() -> dict[str, str]:
    """Every label with a registered extractor -> the extractor's name."""
    return {label: ex.name for label, ex in sorted(_BY_LABEL.items())}


__all__ = ["EXTRACTORS", "KINDS", "NONE", "by_name", "extractor_for", "labels", "register"]
