"""A ``Content-Disposition`` header that is safe for any file name (RFC 6266 / RFC 5987).

Names come from users' disks: they may hold quotes, semicolons, CR/LF, control characters,
path separators or bytes that are not UTF-8 (kept as surrogate escapes by ``os.fsdecode``). The
header carries an ASCII fallback ``filename="..."`` (anything outside printable ASCII, quotes,
backslashes and separators replaced by ``_``) and the exact name percent-encoded in
``filename*=UTF-8''...`` (undecodable bytes shown as U+FFFD). Header injection is impossible:
every byte of the header is printable ASCII.
"""

from __future__ import annotations

from urllib.parse import quote

_FALLBACK_MAX = 150


def _display_name(name: str) -> str:
    """The name with undecodable bytes (surrogate escapes) shown as U+FFFD, path parts dropped."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def ascii_fallback(name: str) -> str:
    """The ``filename="..."`` value for ``name``: printable ASCII only, at most 150 characters.

    Path parts are dropped; anything else outside printable ASCII, and quotes, backslashes,
    semicolons and ``%``, become ``_``; leading and trailing spaces and dots are stripped
    (``payload`` when nothing is left).
    """
    shown = _display_name(name)
    safe = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\;%' else "_" for c in shown).strip(
        " ."
    )
    return (safe or "payload")[:_FALLBACK_MAX]


def content_disposition(name: str | None, *, inline: bool = False) -> str:
    """The ``Content-Disposition`` header value for a download of the file ``name``.

    ``attachment`` (``inline`` with ``inline=True``) with the ASCII fallback
    ``filename="..."`` and the exact name in ``filename*=UTF-8''...``; ``filename="payload"``
    alone when there is no name.
    """
    kind = "inline" if inline else "attachment"
    if not name:
        return f'{kind}; filename="payload"'
    shown = _display_name(name) or "payload"
    return f"{kind}; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{quote(shown, safe='')}"
