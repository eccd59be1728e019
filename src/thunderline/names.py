r"""Bytes-safe paths and names: how they travel and how they are shown.

A POSIX file name is bytes. In memory Thunderline holds it as the ``str`` that
:func:`os.fsdecode` gives (bytes that are not UTF-8 become lone surrogates ``\udc80``-
``\udcff``, "surrogate escapes"), so ``os.fsencode`` gives the exact bytes back. Such a string
cannot be encoded as UTF-8 strictly, so:

* **On the wire** (event JSON, the journal, the DLQ, voxel documents, the outcomes table,
  ``--json``): JSON text written by :func:`dumps` -- UTF-8, with every lone surrogate written as
  a JSON ``\uXXXX`` escape. ``json.loads`` gives back the identical string, so a name
  round-trips exactly; everything else stays readable UTF-8. (Strict JSON parsers other than
  Python's may refuse a lone-surrogate escape; inside Thunderline only :mod:`json` reads it.)
* **In index columns** (plain text, not JSON) the same escaping is applied by
  :func:`wire_text`; the exact value is always in the JSON document beside it.
* **On a terminal** (tables, ``voxels list``, summaries, logs): :func:`shown` makes control
  characters, terminal escape sequences, bidirectional overrides and undecodable bytes visible
  as ``\xNN`` / ``\uNNNN`` escapes (and doubles a backslash), so a name can neither inject
  terminal sequences nor disguise itself.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
#: Characters that change how a terminal draws text without being visible themselves.
_INVISIBLE = frozenset(
    "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2066\u2067\u2068\u2069\u2028\u2029\ufeff"
)


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _escaped(text: str) -> str:
    r"""``text`` with lone surrogates as ``\uXXXX``; ``text`` itself when it has none.

    A ``str`` that strict UTF-8 encodes has no surrogate code point, so the regular
    expression (a scan of every character, ~5 µs per KB of non-ASCII text) runs only on
    text that has one; ASCII text is known at once.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(_escape_surrogate, text)
    return text


def dumps(value: Any, **kwargs: Any) -> str:
    r"""JSON text for the wire: UTF-8 safe, lone surrogates written as ``\uXXXX`` escapes."""
    return _escaped(json.dumps(value, ensure_ascii=False, **kwargs))


def dumps_bytes(value: Any, **kwargs: Any) -> bytes:
    """:func:`dumps` encoded as UTF-8 (never fails on a surrogate-escaped name)."""
    text = json.dumps(value, ensure_ascii=False, **kwargs)
    try:
        return text.encode("utf-8")  # no lone surrogate: nothing to escape
    except UnicodeEncodeError:
        return _SURROGATE.sub(_escape_surrogate, text).encode("utf-8")


def wire_text(text: str) -> str:
    r"""``text`` with lone surrogates as ``\uXXXX`` (for plain-text columns; strict UTF-8)."""
    return _escaped(text)


def utf8(text: str) -> bytes:
    """Bytes for hashing a name: UTF-8, undecodable bytes given back as they were on disk."""
    return text.encode("utf-8", "surrogateescape")


def _shown_char(char: str) -> str:
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of the original name
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    if code < 0x20 or code == 0x7F or 0x80 <= code <= 0x9F:
        return f"\\x{code:02x}"
    if char in _INVISIBLE:
        return f"\\u{code:04x}"
    return char


_NEEDS_ESCAPE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\ud800-\udfff" + "".join(_INVISIBLE) + "]")


def shown(text: str) -> str:
    """``text`` safe to print: control characters and other unsafe text made visible as escapes.

    Control characters, escape sequences, bidi marks and undecodable bytes are escaped; a backslash
    is doubled. Other text is unchanged.
    """
    if not _NEEDS_ESCAPE.search(text):
        return text
    return "".join(_shown_char(c) for c in text)
