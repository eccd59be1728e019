"""Text extraction for text-like artifacts: plain text, HTML, PDF and RTF.

Library choices (measured on the development machine; figures in docs/ARCHITECTURE.md):

- **plain text**: UTF-8 first (strict; a BOM is honoured); text that is UTF-8 with a few stray
  bytes keeps UTF-8 with replacement characters; anything else goes to **charset-normalizer**
  (maintained, pure Python + optional speedups, MIT), which guesses legacy code pages.
- **HTML**: **selectolax**'s ``LexborHTMLParser`` (20-40x faster than BeautifulSoup, a
  maintained binding of the Lexbor HTML5 parser); script, style and template contents are
  dropped and block elements become line breaks.
- **PDF**: **pypdf** (pure Python, BSD, 2-3x faster than pdfminer.six on the files tried, same
  words); encrypted files are tried with the empty password.
- **RTF**: a small built-in reader (control words, ``\\'hh`` and ``\\uN`` escapes, skipped
  destinations such as font tables and pictures): no maintained RTF library is installed.

Every result is capped at ``max_text_bytes`` of UTF-8 (``TL_NLP_MAX_TEXT_BYTES``), cut on a
character boundary, with ``truncated`` set. Failures raise
:class:`~thunderline.nlp.errors.ExtractionError` (reason ``extraction``).
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from thunderline.nlp.errors import ExtractionError

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
_DROP_TAGS: Final = ["script", "style", "noscript", "template", "head > meta", "svg"]


@dataclass(frozen=True)
class Extraction:
    """Text taken from an artifact, and how.

    Attributes:
        text: The extracted text (at most ``max_text_bytes`` of UTF-8).
        method: ``plain``, ``html``, ``pdf`` or ``rtf``.
        encoding: The character encoding used to decode bytes (None for PDF).
        truncated: Whether input or text was cut to the limits.
        bytes_in: Size of the input that was read.
        pages: Pages read (PDF only).
    """

    text: str
    method: str
    encoding: str | None
    truncated: bool
    bytes_in: int
    pages: int | None = None

    def info(self) -> dict[str, Any]:
        """What the NLP event reports under ``extraction`` (everything but the text)."""
        out: dict[str, Any] = {
            "method": self.method,
            "encoding": self.encoding,
            "truncated": self.truncated,
            "bytes_in": self.bytes_in,
            "chars": len(self.text),
        }
        if self.pages is not None:
            out["pages"] = self.pages
        return out


def method_for(label: str | None, mime: str | None = None) -> str:
    """The extraction method for a Magika label / MIME type (``plain`` unless recognised)."""
    label = (label or "").lower()
    mime = (mime or "").lower()
    if label == "pdf" or mime == "application/pdf":
        return "pdf"
    if label in {"html", "xhtml", "mht"} or mime in {"text/html", "application/xhtml+xml"}:
        return "html"
    if label == "rtf" or mime in {"text/rtf", "application/rtf"}:
        return "rtf"
    return "plain"


def cap_text(text: str, max_bytes: int) -> tuple[str, bool]:
    """``text`` cut to at most ``max_bytes`` of UTF-8 on a character boundary."""
    if len(text) * 4 <= max_bytes:
        return text, False
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text, False
    return encoded[:max_bytes].decode("utf-8", "ignore"), True


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode bytes of unknown encoding; returns the text and the encoding used."""
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
    """A legacy code page for ``sample``: charset-normalizer's least chaotic candidates,
    ranked by how sure the language detector is of the decoded text (short texts leave
    charset-normalizer with many equal guesses), then by how common the code page is."""
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


def _plain(data: bytes, limit: int, cut: bool) -> Extraction:
    text, encoding = decode_text(data)
    text, truncated = cap_text(text, limit)
    return Extraction(text, "plain", encoding, truncated or cut, len(data))


def _html(data: bytes, limit: int, cut: bool) -> Extraction:
    from selectolax.lexbor import LexborHTMLParser

    markup, encoding = decode_text(data)
    tree = LexborHTMLParser(markup)
    tree.strip_tags(_DROP_TAGS)
    for node in tree.css(_BLOCK_TAGS):
        node.insert_after("\n")
    root = tree.root
    raw = root.text(separator="", strip=False) if root is not None else ""
    lines = (" ".join(line.split()) for line in raw.splitlines())
    text = "\n".join(line for line in lines if line)
    text, truncated = cap_text(text, limit)
    return Extraction(text, "html", encoding, truncated or cut, len(data))


def _pdf(data: bytes, limit: int) -> Extraction:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("the PDF is encrypted with a password")
        parts: list[str] = []
        size = 0
        pages = 0
        truncated = False
        for page in reader.pages:
            chunk = page.extract_text() or ""
            pages += 1
            parts.append(chunk)
            size += len(chunk.encode("utf-8", "surrogatepass"))
            if size > limit:
                truncated = True
                break
    except ExtractionError:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files
        raise ExtractionError(f"cannot read PDF: {type(exc).__name__}: {exc}") from exc
    text, cut = cap_text("\n".join(parts), limit)
    return Extraction(text, "pdf", None, truncated or cut, len(data), pages=pages)


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


def _rtf(data: bytes, limit: int, cut: bool) -> Extraction:
    if not data.lstrip().startswith(b"{\\rtf"):
        raise ExtractionError("not an RTF document (no {\\rtf header)")
    text = rtf_to_text(data.decode("latin-1"))
    text, truncated = cap_text(text, limit)
    return Extraction(text, "rtf", "rtf", truncated or cut, len(data))


def extract_text(data: bytes, method: str, max_text_bytes: int) -> Extraction:
    """Extract text from ``data`` with ``method`` (see :func:`method_for`).

    Plain text is read up to ``max_text_bytes`` and markup up to ``MARKUP_FACTOR`` times that;
    larger inputs are cut first (``truncated``). PDFs are read page by page until the cap.

    Raises:
        ExtractionError: the payload cannot be read as ``method``.
    """
    if method == "pdf":
        return _pdf(data, max_text_bytes)
    budget = max_text_bytes if method == "plain" else max_text_bytes * MARKUP_FACTOR
    cut = len(data) > budget
    head = data[:budget] if cut else data
    if method == "html":
        return _html(head, max_text_bytes, cut)
    if method == "rtf":
        return _rtf(head, max_text_bytes, cut)
    return _plain(head, max_text_bytes, cut)


def read_head(path: Path, method: str, max_text_bytes: int) -> bytes:
    """The part of a file :func:`extract_text` needs (all of a PDF, the head of the rest)."""
    if method == "pdf":
        return path.read_bytes()
    budget = max_text_bytes if method == "plain" else max_text_bytes * MARKUP_FACTOR
    with path.open("rb") as handle:
        return handle.read(budget + 1)
