r"""Text formats: plain text and markup, stripped to text with headings kept as structure.

Plain text, code, config, data (CSV/TSV), HTML, Markdown, reStructuredText, LaTeX, subtitles
(SRT/WebVTT), calendars (iCalendar) and RTF.

Markup is stripped to plain text and headings are kept as structure (Markdown ``## Contents``
becomes the line ``Contents`` and a level-2 :class:`~thunderline.extract.result.Heading`), so
no syntax reaches spaCy. Library per format (figures in docs/ARCHITECTURE.md):

- decoding: UTF-8 first (a BOM is honoured), UTF-8 with a few stray bytes kept, anything else
  through **charset-normalizer** ranked by the language detector;
- HTML: **selectolax** (Lexbor); Markdown: **markdown-it-py** (CommonMark tokens);
  reStructuredText: **docutils** (the reference parser; file inclusion and raw output off);
  LaTeX: **pylatexenc** (``LatexNodes2Text``); CSV/TSV: the standard ``csv`` module;
- SRT, WebVTT, iCalendar and RTF are small line/token formats read here (RTF by the reader
  this project already had: control words, ``\'hh`` and ``\uN`` escapes, skipped
  destinations).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path
from typing import Any, Final

from thunderline.extract.base import ExtractContext, TextBuilder, read_head, result
from thunderline.extract.errors import ExtractionError
from thunderline.extract.result import ContentKind, DocMetadata, ExtractResult

#: Bytes of a plain-text payload charset-normalizer looks at.
CHARSET_SAMPLE: Final = 256 * 1024
#: Markup may be this many times larger than the text cap before it is cut (HTML, RTF).
MARKUP_FACTOR: Final = 8
#: Undecodable bytes tolerated in text that has valid UTF-8 multi-byte sequences: a few, or a
#: small share (legacy code pages almost never form valid UTF-8 sequences by accident).
STRAY_BYTES_MIN: Final = 8
STRAY_BYTES_MAX: Final = 0.02

_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_COMMON_CODEPAGES: Final = (
    "cp1252",
    "latin_1",
    "iso8859_15",
    "cp1250",
    "cp1251",
    "iso8859_2",
    "koi8_r",
    "cp437",
    "shift_jis",
    "euc_jp",
    "gb2312",
    "gb18030",
    "big5",
    "euc_kr",
    "cp1253",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1257",
    "cp1258",
)
_BLOCK_TAGS: Final = (
    "p,div,br,li,ul,ol,tr,td,th,table,h1,h2,h3,h4,h5,h6,title,pre,blockquote,"
    "section,article,header,footer,nav,aside,dd,dt,hr,figcaption"
)
_BLOCKS: Final = frozenset(_BLOCK_TAGS.split(","))
_HEADING_LEVEL: Final = {f"h{i}": i for i in range(1, 7)}
#: Elements dropped with their content before the text is read (the title is read first).
#: Tag names: ``strip_tags`` walks the document once per name (a former ``"head > meta"``
#: entry, a selector, matched no element and cost one walk).
_DROP_TAGS: Final = ["script", "style", "noscript", "template", "svg", "title"]


def cap_text(text: str, max_bytes: int) -> tuple[str, bool]:
    """``text`` cut to at most ``max_bytes`` of UTF-8 on a character boundary."""
    if len(text) * 4 <= max_bytes:
        return text, False
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text, False
    return encoded[:max_bytes].decode("utf-8", "ignore"), True


#: The byte-order marks decode_text reads.
_BOMS: Final = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode bytes of unknown encoding; returns the text and the encoding used."""
    if data.startswith(_BOMS):  # one C call for the common case: no byte-order mark
        if data.startswith(codecs.BOM_UTF8):
            return data[len(codecs.BOM_UTF8) :].decode("utf-8", "replace"), "utf-8-sig"
        for bom, name in ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
            if data.startswith(bom):
                return data.decode(name, "replace"), name
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "replace")
    stray = text.count("\ufffd")
    multibyte = len(_UTF8_MULTIBYTE.findall(data[:CHARSET_SAMPLE]))
    if multibyte and stray <= max(multibyte, STRAY_BYTES_MIN, len(data) * STRAY_BYTES_MAX):
        return text, "utf-8"  # UTF-8 with a few broken bytes: keep it, mark them
    encoding = _guess_legacy(data[:CHARSET_SAMPLE])
    if encoding is None:
        return text, "utf-8"
    return data.decode(encoding, "replace"), encoding


def _guess_legacy(sample: bytes) -> str | None:
    """A legacy code page for ``sample``, from charset-normalizer's least chaotic candidates.

    The candidates are ranked by how sure the language detector is of the decoded text (short
    texts leave charset-normalizer with many equal guesses), then by how common the code page is.
    """
    import charset_normalizer

    from thunderline.nlp.lang import shared_detector

    found = list(charset_normalizer.from_bytes(sample))
    if not found:
        return None
    least = min(match.chaos for match in found)
    candidates = [m.encoding for m in found if m.chaos <= least + 0.01][:12]
    detector = shared_detector()

    def rank(encoding: str) -> tuple[float, int]:
        try:
            decoded = sample.decode(encoding, "replace")
        except LookupError:
            return (-1.0, 0)
        common = _COMMON_CODEPAGES.index(encoding) if encoding in _COMMON_CODEPAGES else 99
        return (round(detector.detect(decoded).score, 1), -common)

    return max(candidates, key=rank)


# ---- RTF --------------------------------------------------------------------------------
_RTF_TOKEN = re.compile(
    r"\\([a-z]{1,32})(-?\d{1,10})? ?|\\'([0-9a-f]{2})|\\([^a-z])|([{}])|[\r\n]+|(.)",
    re.IGNORECASE | re.DOTALL,
)
_RTF_SKIP_WORDS: Final = (
    "aftncn aftnsep aftnsepc annotation atnauthor atndate atnicn atnid atnparent atnref "
    "atntime atrfend atrfstart author background bkmkend bkmkstart blipuid buptim category "
    "colorschememapping colortbl comment company creatim datafield datastore defchp defpap "
    "do doccomm docvar dptxbxtext ebcend ebcstart factoidname falt fchars ffdeftext "
    "ffentrymcr ffexitmcr ffformat ffhelptext ffl ffname ffstattext field file filetbl "
    "fldinst fldtype fname fontemb fontfile fonttbl footer footerf footerl footerr footnote "
    "formfield ftncn ftnsep ftnsepc g generator gridtbl header headerf headerl headerr hl "
    "hlfr hlinkbase hlloc hlsrc hsv htmltag info keycode keywords latentstyles lchars "
    "levelnumbers leveltext lfolevel linkval list listlevel listname listoverride "
    "listoverridetable listpicture liststylename listtable listtext lsdlockedexcept macc "
    "maccPr mailmerge maln malnScr manager margPr mbar mbarPr mbaseJc mbegChr mborderBox "
    "mborderBoxPr mbox mboxPr mchr mcount mctrlPr md mdeg mdegHide mden mdiff mdPr me "
    "mendChr meqArr meqArrPr mf mfName mfPr mfunc mfuncPr mgroupChr mgroupChrPr mgrow "
    "mhideBot mhideLeft mhideRight mhideTop mhtmltag mlim mlimloc mlimlow mlimlowPr mlimupp "
    "mlimuppPr mm mmaddfieldname mmath mmathPict mmathPr mmaxdist mmc mmcJc mmconnectstr "
    "mmconnectstrdata mmcPr mmcs mmdatasource mmheadersource mmmailsubject mmodso "
    "mmodsofilter mmodsofldmpdata mmodsomappedname mmodsoname mmodsorecipdata mmodsosort "
    "mmodsosrc mmodsotable mmodsoudl mmodsoudldata mmodsouniquetag mmPr mmquery mmr mnary "
    "mnaryPr mnoBreak mnum mobjDist moMath moMathPara moMathParaPr mopEmu mphant mphantPr "
    "mplcHide mpos mr mrad mradPr mrPr msepChr mshow mshp msPre msPrePr msSub msSubPr "
    "msSubSup msSubSupPr msSup msSupPr mstrikeBLTR mstrikeH mstrikeTLBR mstrikeV msub "
    "msubHide msup msupHide mtransp mtype mvertJc mvfmf mvfml mvtof mvtol mzeroAsc "
    "mzeroDesc mzeroWid nesttableprops nextfile nonesttables objalias objclass objdata "
    "object objname objsect objtime oldcprops oldpprops oldsprops oldtprops oleclsid "
    "operator panose password passwordhash pgp pgptbl picprop pict pn pnseclvl pntext "
    "pntxta pntxtb printim private propname protend protstart protusertbl pxe result "
    "revtbl revtim rsidtbl rxe shp shpgrp shpinst shppict shprslt shptxt sn sp staticval "
    "stylesheet subject sv svb tc template themedata title txe ud upr userprops "
    "wgrffmtfilter windowcaption writereservation writereservhash xe xform xmlattrname "
    "xmlattrvalue xmlclose xmlname xmlnstbl xmlopen"
)
#: RTF destinations whose content is not document text.
_RTF_SKIP: Final = frozenset(_RTF_SKIP_WORDS.split())
_RTF_SPECIAL: Final = {
    "par": "\n",
    "sect": "\n\n",
    "page": "\n\n",
    "line": "\n",
    "tab": "\t",
    "emdash": "\u2014",
    "endash": "\u2013",
    "emspace": "\u2003",
    "enspace": "\u2002",
    "qmspace": "\u2005",
    "bullet": "\u2022",
    "lquote": "\u2018",
    "rquote": "\u2019",
    "ldblquote": "\u201c",
    "rdblquote": "\u201d",
    "row": "\n",
    "cell": " ",
    "nestcell": " ",
}


def rtf_to_text(rtf: str) -> str:
    """Plain text of an RTF document (formatting, fonts, pictures and metadata dropped)."""
    stack: list[tuple[int, bool]] = []
    ignorable = False
    uc_skip = 1
    skip = 0
    codepage = "cp1252"
    out: list[str] = []
    pending: bytearray = bytearray()

    def flush() -> None:
        if pending:
            out.append(pending.decode(codepage, "replace"))
            pending.clear()

    for match in _RTF_TOKEN.finditer(rtf):
        word, arg, hexcode, char, brace, tchar = match.groups()
        if brace:
            skip = 0
            if brace == "{":
                stack.append((uc_skip, ignorable))
            elif stack:
                uc_skip, ignorable = stack.pop()
        elif char:
            skip = 0
            if char == "~" and not ignorable:
                flush()
                out.append("\xa0")
            elif char in "{}\\" and not ignorable:
                flush()
                out.append(char)
            elif char == "*":
                ignorable = True
        elif word:
            skip = 0
            if word in _RTF_SKIP:
                ignorable = True
            elif ignorable:
                pass
            elif word in _RTF_SPECIAL:
                flush()
                out.append(_RTF_SPECIAL[word])
            elif word == "ansicpg" and arg:
                candidate = f"cp{int(arg)}"
                try:
                    codecs.lookup(candidate)
                    codepage = candidate
                except LookupError:
                    pass
            elif word == "uc":
                uc_skip = int(arg or 1)
            elif word == "u" and arg is not None:
                flush()
                value = int(arg)
                out.append(chr(value + 0x10000 if value < 0 else value))
                skip = uc_skip
        elif hexcode:
            if skip > 0:
                skip -= 1
            elif not ignorable:
                pending.append(int(hexcode, 16))
        elif tchar:
            if skip > 0:
                skip -= 1
            elif not ignorable:
                flush()
                out.append(tchar)
    flush()
    text = "".join(out)
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


# ---- reading ------------------------------------------------------------------------------
def _decoded(path: Path, ctx: ExtractContext, factor: int = 1) -> tuple[str, str, int, bool]:
    data, cut = read_head(path, ctx.max_text_bytes * factor)
    text, encoding = decode_text(data)
    return text, encoding, len(data), cut


def _lines_into(builder: TextBuilder, text: str) -> None:
    for line in text.splitlines():
        if builder.full:
            break
        builder.line(line.rstrip())


# ---- plain, code, config ------------------------------------------------------------------
def extract_plain(path: Path, ctx: ExtractContext, content: ContentKind = "prose") -> ExtractResult:
    """Text as it is, decoded (prose, code, config, data)."""
    text, encoding, size, cut = _decoded(path, ctx)
    text, capped = cap_text(text.replace("\r\n", "\n"), ctx.max_text_bytes)
    builder = TextBuilder(ctx.max_text_bytes)
    builder.text(text)
    return result(
        ctx,
        {"prose": "plain", "code": "code", "config": "config", "data": "data"}.get(
            content, "plain"
        ),
        "charset-normalizer",
        builder,
        content=content,
        encoding=encoding,
        bytes_in=size,
        truncated=cut or capped,
    )


def extract_code(path: Path, ctx: ExtractContext) -> ExtractResult:
    """Source code as it is, decoded (content kind ``code``)."""
    return extract_plain(path, ctx, "code")


def extract_config(path: Path, ctx: ExtractContext) -> ExtractResult:
    """A configuration file as it is, decoded (content kind ``config``)."""
    return extract_plain(path, ctx, "config")


def extract_delimited(path: Path, ctx: ExtractContext) -> ExtractResult:
    """CSV / TSV: one line per row, cells separated by `` | `` (a header row kept as is)."""
    text, encoding, size, cut = _decoded(path, ctx, 2)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = "excel-tab" if ctx.label == "tsv" else "excel"
    builder = TextBuilder(ctx.max_text_bytes)
    rows = 0
    try:
        for row in csv.reader(io.StringIO(text), dialect):
            cells = [" ".join(cell.split()) for cell in row]
            if any(cells):
                builder.line(" | ".join(cells))
                rows += 1
            if builder.full:
                break
    except csv.Error as exc:
        ctx.warn(f"CSV read stopped: {exc}")
    meta = DocMetadata()
    return result(
        ctx,
        "csv",
        "stdlib",
        builder,
        content="data",
        metadata=meta,
        raw={"rows": rows},
        encoding=encoding,
        bytes_in=size,
        truncated=cut,
    )


# ---- HTML ---------------------------------------------------------------------------------
def html_into(builder: TextBuilder, markup: str) -> dict[str, str]:
    """Text of an HTML document into ``builder`` (h1-h6 as headings); returns its metadata.

    The metadata: ``title`` and ``<meta name=... content=...>``. Elements are found by tag
    name (``tags()``) and one walk of the body, not CSS selectors: compiling a selector list
    cost more than the parse itself on a small page (benchmarks/extract.py).
    """
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(markup)
    meta: dict[str, str] = {}
    titles = tree.tags("title")
    if titles:
        title = " ".join(titles[0].text().split())  # a title holds one text node
        if title:
            meta["title"] = title
    for node in tree.tags("meta"):
        attributes = node.attributes
        name = attributes.get("name")
        content = attributes.get("content")
        if name and content:
            meta[name.lower()] = content
    top = tree.root
    if top is not None and top.tag == "html":
        lang = top.attributes.get("lang")
        if lang:
            meta["lang"] = str(lang)
    tree.strip_tags(_DROP_TAGS)
    root = tree.body or tree.root
    if root is None:
        return meta
    # (node, its heading level or 0); each node's tag read once (``tag`` decodes a new str)
    blocks: list[tuple[Any, int]] = []
    for node in root.traverse():
        tag = node.tag
        if tag in _BLOCKS:
            blocks.append((node, _HEADING_LEVEL.get(tag, 0)))
    for node, level in blocks:  # marked after the walk: the walk must not see its own edits
        if level:
            node.insert_before(f"\n\x01{level}\x02")
        node.insert_after("\n")
    raw = root.text(separator="", strip=False)
    lines: list[str] = []  # clean lines since the last heading: one builder call for them
    for line in raw.splitlines():
        if line.startswith("\x01") and "\x02" in line:
            if lines:
                builder.line("\n".join(lines))
                lines.clear()
            if builder.full:
                break
            level_text, _, rest = line[1:].partition("\x02")
            builder.heading(int(level_text), rest)
            continue
        clean = " ".join(line.split())
        if clean:
            lines.append(clean)
    builder.line("\n".join(lines))
    return meta


def _meta_from_html(meta: dict[str, str]) -> DocMetadata:
    author = meta.get("author")
    return DocMetadata(
        title=meta.get("title"),
        authors=[author] if author else [],
        subject=meta.get("description"),
        language=meta.get("lang"),
        software=meta.get("generator"),
    )


def extract_html(path: Path, ctx: ExtractContext) -> ExtractResult:
    """HTML through **selectolax**: the text, h1-h6 as headings, title and meta tags as metadata."""
    markup, encoding, size, cut = _decoded(path, ctx, MARKUP_FACTOR)
    builder = TextBuilder(ctx.max_text_bytes)
    meta = html_into(builder, markup)
    return result(
        ctx,
        "html",
        "selectolax",
        builder,
        metadata=_meta_from_html(meta),
        raw=meta,  # clip_raw makes the result's own dict
        encoding=encoding,
        bytes_in=size,
        truncated=cut,
    )


# ---- Markdown -----------------------------------------------------------------------------
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n(?:---|\.\.\.)\n", re.DOTALL)


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    """YAML-ish ``key: value`` front matter (title, author, date), and the rest."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta: dict[str, str] = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and not key.startswith((" ", "\t")):
            meta[key.strip().lower()] = value.strip().strip("'\"")
    return meta, text[match.end() :]


def extract_markdown(path: Path, ctx: ExtractContext) -> ExtractResult:
    """CommonMark (+ tables) to text, headings kept as structure.

    Code blocks, HTML blocks and link targets are dropped, image alt text kept.
    """
    from markdown_it import MarkdownIt

    source, encoding, size, cut = _decoded(path, ctx, 2)
    meta, body = _front_matter(source)
    parser = MarkdownIt("commonmark").enable("table")
    tokens = parser.parse(body)
    builder = TextBuilder(ctx.max_text_bytes)
    heading: int | None = None
    skipped = 0
    for token in tokens:
        if builder.full:
            break
        if token.type == "heading_open":
            heading = int(token.tag[1:])
        elif token.type == "heading_close":
            heading = None
        elif token.type in ("fence", "code_block", "html_block"):
            skipped += 1
        elif token.type == "inline":
            parts: list[str] = []
            for child in token.children or []:
                if child.type in ("text", "code_inline"):
                    parts.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    parts.append(" ")
                elif child.type == "image":
                    parts.append(child.content)
            line = " ".join("".join(parts).split())
            if heading is not None:
                builder.heading(heading, line)
            elif line:
                builder.line(line)
    if skipped:
        ctx.warn(f"{skipped} code or HTML block(s) left out of the text")
    title = meta.get("title") or (builder.headings[0].text if builder.headings else None)
    return result(
        ctx,
        "markdown",
        "markdown-it-py",
        builder,
        metadata=DocMetadata(
            title=title,
            authors=[meta["author"]] if meta.get("author") else [],
            language=meta.get("lang") or meta.get("language"),
        ),
        raw=dict(meta),
        encoding=encoding,
        bytes_in=size,
        truncated=cut,
    )


# ---- reStructuredText ---------------------------------------------------------------------
def extract_rst(path: Path, ctx: ExtractContext) -> ExtractResult:
    """The text of reStructuredText, through docutils' parser, section titles as headings.

    Headings take the section depth as level; paragraphs, list items, definitions kept; literal
    blocks, comments and system messages dropped. File inclusion and ``raw`` are off; problems
    are collected, never printed.
    """
    from docutils import nodes
    from docutils.core import publish_doctree
    from docutils.utils import SystemMessage

    source, encoding, size, cut = _decoded(path, ctx, 2)
    overrides = {
        "report_level": 5,
        "halt_level": 5,
        "file_insertion_enabled": False,
        "raw_enabled": False,
        "warning_stream": io.StringIO(),
        "input_encoding": "unicode",
        "doctitle_xform": False,
    }
    try:
        tree = publish_doctree(source, settings_overrides=overrides)
    except (SystemMessage, ValueError, AttributeError, IndexError) as exc:
        raise ExtractionError(f"cannot parse reStructuredText: {exc}") from exc
    builder = TextBuilder(ctx.max_text_bytes)
    skip = (
        nodes.literal_block,
        nodes.comment,
        nodes.system_message,
        nodes.raw,
        nodes.doctest_block,
    )
    meta: dict[str, str] = {}

    def depth(node: Any) -> int:
        level = 0
        parent = node.parent
        while parent is not None:
            if isinstance(parent, nodes.section):
                level += 1
            parent = parent.parent
        return max(level, 1)

    def inside_skipped(node: Any) -> bool:
        parent = node.parent
        while parent is not None:
            if isinstance(parent, skip):
                return True
            parent = parent.parent
        return False

    wanted = (nodes.title, nodes.paragraph, nodes.line, nodes.term, nodes.rubric, nodes.field_name)
    for node in tree.findall(lambda n: isinstance(n, wanted)):
        if builder.full:
            break
        if inside_skipped(node):
            continue
        text = " ".join(node.astext().split())
        if isinstance(node, nodes.title):
            builder.heading(depth(node), text)
        elif isinstance(node, nodes.field_name):
            continue
        else:
            builder.line(text)
    for field in tree.findall(nodes.field):
        name = field.children[0].astext().strip().lower() if field.children else ""
        if name in ("author", "authors", "date", "title", "language") and len(field.children) > 1:
            meta[name] = " ".join(field.children[1].astext().split())
    title = meta.get("title") or (builder.headings[0].text if builder.headings else None)
    authors = [
        a.strip()
        for a in re.split(r"[;,]", meta.get("author", meta.get("authors", "")))
        if a.strip()
    ]
    return result(
        ctx,
        "rst",
        "docutils",
        builder,
        metadata=DocMetadata(title=title, authors=authors, language=meta.get("language")),
        raw=dict(meta),
        encoding=encoding,
        bytes_in=size,
        truncated=cut,
    )


# ---- LaTeX --------------------------------------------------------------------------------
_LATEX_LEVELS: Final = {
    "part": 1,
    "chapter": 1,
    "section": 2,
    "subsection": 3,
    "subsubsection": 4,
    "paragraph": 5,
}
_LATEX_HEAD = re.compile(
    r"\\(part|chapter|section|subsection|subsubsection|paragraph)\*?\s*(?:\[[^\]]*\])?\s*\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}"
)
_LATEX_META = re.compile(r"\\(title|author|date)\s*\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")


def extract_latex(path: Path, ctx: ExtractContext) -> ExtractResult:
    r"""LaTeX to text with pylatexenc, sectioning commands as headings.

    The body after ``\begin{document}`` (the whole file without one), sectioning commands as
    headings, ``\title``/``\author`` as metadata.
    """
    from pylatexenc.latex2text import LatexNodes2Text

    source, encoding, size, cut = _decoded(path, ctx, 2)
    converter = LatexNodes2Text(math_mode="verbatim", strict_latex_spaces=False)

    def plain(fragment: str) -> str:
        try:
            return str(converter.latex_to_text(fragment))
        except (IndexError, ValueError, KeyError) as exc:
            ctx.warn(f"LaTeX fragment read as text: {type(exc).__name__}")
            return fragment

    meta = {name: " ".join(plain(value).split()) for name, value in _LATEX_META.findall(source)}
    body = source
    begin = source.find("\\begin{document}")
    if begin >= 0:
        body = source[begin + len("\\begin{document}") :]
        end = body.find("\\end{document}")
        body = body[:end] if end >= 0 else body
    body = body.replace("\\maketitle", "")
    builder = TextBuilder(ctx.max_text_bytes)
    position = 0
    for match in _LATEX_HEAD.finditer(body):
        _lines_into(builder, _squeeze(plain(body[position : match.start()])))
        builder.heading(_LATEX_LEVELS[match.group(1)], plain(match.group(2)))
        position = match.end()
        ctx.progress()
    _lines_into(builder, _squeeze(plain(body[position:])))
    authors = [a.strip() for a in re.split(r"\\and|,| and ", meta.get("author", "")) if a.strip()]
    return result(
        ctx,
        "latex",
        "pylatexenc",
        builder,
        metadata=DocMetadata(title=meta.get("title"), authors=authors),
        raw=dict(meta),
        encoding=encoding,
        bytes_in=size,
        truncated=cut,
    )


def _squeeze(text: str) -> str:
    """Paragraphs of LaTeX output on one line each (hard-wrapped source joined)."""
    paragraphs = re.split(r"\n\s*\n", text)
    return "\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


# ---- subtitles ----------------------------------------------------------------------------
_CUE_TIME = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?[.,]\d{3}\s*-->")
_TAG = re.compile(r"</?[a-zA-Z][^>]*>|\{\\[^}]*\}")


def extract_subtitles(path: Path, ctx: ExtractContext) -> ExtractResult:
    """SRT / WebVTT: the spoken lines, with the end of the last cue as ``duration_s``.

    Numbers, timings, styling tags and NOTE blocks are dropped.
    """
    text, encoding, size, cut = _decoded(path, ctx, 2)
    builder = TextBuilder(ctx.max_text_bytes)
    cues = 0
    last_end = 0.0
    block: list[str] = []

    def flush() -> None:
        nonlocal cues
        lines = [ln for ln in block if ln.strip()]
        block.clear()
        if not lines or lines[0].startswith(("WEBVTT", "NOTE", "STYLE", "REGION")):
            return
        spoken = [ln for ln in lines if not _CUE_TIME.search(ln) and not ln.strip().isdigit()]
        if any(_CUE_TIME.search(ln) for ln in lines) and spoken:
            cues += 1
            builder.line(" ".join(_TAG.sub("", " ".join(spoken)).split()))

    for line in text.splitlines():
        if _CUE_TIME.search(line):
            last_end = max(last_end, _seconds(line.split("-->")[1].strip().split(" ")[0]))
        if not line.strip():
            flush()
        else:
            block.append(line)
    flush()
    return result(
        ctx,
        "subtitles",
        "stdlib",
        builder,
        metadata=DocMetadata(duration_s=last_end or None),
        raw={"cues": cues},
        encoding=encoding,
        bytes_in=size,
        truncated=cut,
    )


def _seconds(stamp: str) -> float:
    parts = stamp.replace(",", ".").split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return 0.0
    total = 0.0
    for value in values:
        total = total * 60 + value
    return total


# ---- iCalendar ----------------------------------------------------------------------------
_ICS_TEXT: Final = ("SUMMARY", "DESCRIPTION", "LOCATION", "COMMENT")


def _ics_unescape(value: str) -> str:
    return (
        value.replace("\\n", "\n").replace("\\N", "\n").replace("\\,", ",").replace("\\;", ";")
    ).replace("\\\\", "\\")


def extract_calendar(path: Path, ctx: ExtractContext) -> ExtractResult:
    """Calendars in iCalendar (RFC 5545): one ``event`` segment per VEVENT / VTODO / VJOURNAL.

    Each segment holds its summary, location and description; the calendar's name and producer as
    metadata.
    """
    text, encoding, size, cut = _decoded(path, ctx, 2)
    unfolded: list[str] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += line[1:]
        else:
            unfolded.append(line)
    builder = TextBuilder(ctx.max_text_bytes)
    raw: dict[str, str] = {}
    events = 0
    in_item = False
    for line in unfolded:
        head, sep, value = line.partition(":")
        if not sep:
            continue
        name = head.split(";", 1)[0].upper()
        if name == "BEGIN" and value.upper() in ("VEVENT", "VTODO", "VJOURNAL"):
            in_item = True
            events += 1
            builder.segment("event")
        elif name == "END" and value.upper() in ("VEVENT", "VTODO", "VJOURNAL"):
            in_item = False
        elif in_item and name in _ICS_TEXT:
            builder.line(_ics_unescape(value).strip())
        elif not in_item and name in ("PRODID", "X-WR-CALNAME", "X-WR-CALDESC", "NAME"):
            raw[name] = _ics_unescape(value)
        if builder.full:
            break
    return result(
        ctx,
        "calendar",
        "stdlib",
        builder,
        metadata=DocMetadata(
            title=raw.get("X-WR-CALNAME") or raw.get("NAME"), software=raw.get("PRODID")
        ),
        raw={**raw, "events": events},
        encoding=encoding,
        bytes_in=size,
        truncated=cut,
    )


# ---- RTF ----------------------------------------------------------------------------------
_RTF_INFO = re.compile(r"\{\\(title|author|subject|company|operator)\s+([^{}]*)\}")


def extract_rtf(path: Path, ctx: ExtractContext) -> ExtractResult:
    """RTF by this module's reader: the text (control words and escapes resolved), info as metadata.

    Raises:
        ExtractionError: the file has no RTF header.
    """
    data, cut = read_head(path, ctx.max_text_bytes * MARKUP_FACTOR)
    if not data.lstrip().startswith(b"{\\rtf"):
        raise ExtractionError("not an RTF document (no {\\rtf header)")
    source = data.decode("latin-1")
    info = {k: v.strip() for k, v in _RTF_INFO.findall(source)}
    builder = TextBuilder(ctx.max_text_bytes)
    _lines_into(builder, rtf_to_text(source))
    return result(
        ctx,
        "rtf",
        "stdlib",
        builder,
        metadata=DocMetadata(
            title=info.get("title"),
            authors=[info["author"]] if info.get("author") else [],
            subject=info.get("subject"),
        ),
        raw=dict(info),
        encoding="rtf",
        bytes_in=len(data),
        truncated=cut,
    )
