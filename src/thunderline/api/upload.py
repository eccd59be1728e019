"""Receive one uploaded file from a ``multipart/form-data`` body, streamed, bounded, checked.

The file name comes from ``filename*=`` (RFC 5987, UTF-8 or ISO-8859-1) when the part has one,
else from ``filename=`` with ``%XX`` escapes decoded; either way it must then be a UTF-8 base
name (:func:`check_filename`), and the decoded name is the one stored.

The body is read chunk by chunk straight from the ASGI channel (never whole, never through
Starlette's form parser, which spools every file to disk before any limit applies). The file
part is hashed while it is written to a private spool file; reading stops with ``413`` as soon
as the part passes the limit, with ``408`` when the client stalls longer than the read timeout,
and silently (nothing kept) when the client disconnects. Only a complete, well-formed upload
leaves this module; every other path removes the spool file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote_to_bytes

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from thunderline.api.errors import ApiError

#: Multipart overhead allowed on top of the file limit when checking ``Content-Length``.
ENVELOPE_BYTES = 64 * 1024
MAX_PARTS = 16
MAX_FIELD_BYTES = 64 * 1024
MAX_NAME_BYTES = 255
FILE_FIELD = "file"

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ClientDisconnected(Exception):
    """The client went away before the body was complete (nothing was kept)."""


@dataclass
class ReceivedFile:
    """A complete upload in its spool file (the caller stores it, then calls :meth:`discard`)."""

    name: str
    path: Path
    size: int
    sha256: str
    content_type: str | None

    def discard(self) -> None:
        """Delete the spool file (nothing happens when it is already gone)."""
        self.path.unlink(missing_ok=True)


_PERCENT = re.compile(rb"%[0-9A-Fa-f]{2}")
_EXT_FILENAME = re.compile(rb"(?:^|;)\s*filename\*\s*=\s*(?P<value>[^;]*)", re.IGNORECASE)
_EXT_CHARSETS = {b"utf-8": "utf-8", b"iso-8859-1": "iso-8859-1"}


def extended_filename(disposition: bytes) -> bytes | None:
    """The raw RFC 5987 ``filename*=charset'lang'value`` of a Content-Disposition header.

    The value is percent-decoded and re-encoded as UTF-8 (None: there is none).

    Raises:
        ApiError: 400 ``invalid_filename`` for a malformed value or a charset other than
            UTF-8 or ISO-8859-1.
    """
    found = _EXT_FILENAME.search(disposition)
    if found is None:
        return None
    value = found.group("value").strip().strip(b'"')
    charset, sep1, rest = value.partition(b"'")
    _lang, sep2, encoded = rest.partition(b"'")
    codec = _EXT_CHARSETS.get(charset.lower())
    if not sep1 or not sep2 or codec is None:
        raise ApiError(
            400,
            "invalid_filename",
            "filename* must be RFC 5987 `UTF-8''<percent-encoded name>` (or ISO-8859-1)",
        )
    try:
        return unquote_to_bytes(encoded).decode(codec).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, "invalid_filename", f"filename* is not valid {codec} (byte {exc.start})"
        ) from exc


def check_filename(raw: bytes, *, percent_encoded: bool = True) -> str:
    """The upload's file name, or a 400 naming what is wrong with it.

    ``%XX`` escapes are decoded first (browsers escape ``"``, CR and LF that way, and clients
    are told to percent-encode names that are not UTF-8), then the name must be UTF-8 and a
    plain base name. ``percent_encoded=False``: ``raw`` is already decoded (``filename*``).
    """
    if percent_encoded and _PERCENT.search(raw):
        raw = unquote_to_bytes(raw)
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400,
            "invalid_filename",
            f"the file name is not valid UTF-8 (byte {exc.start}); rename the file, send the "
            "UTF-8 name percent-encoded, or use filename*=UTF-8''<percent-encoded name>",
        ) from exc
    problem = None
    if not name or name in {".", ".."}:
        problem = "is empty or a relative path step"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator (send the base name only)"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        problem = "contains control characters"
    elif len(raw) > MAX_NAME_BYTES:
        problem = f"is longer than {MAX_NAME_BYTES} bytes"
    if problem:
        raise ApiError(
            400, "invalid_filename", f"the file name {problem}", details={"filename": name[:300]}
        )
    return name


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    field_name: str | None = None
    is_file: bool = False
    size: int = 0


class _Receiver:
    """Multipart parser callbacks: one file part streamed to a spool file, fields ignored."""

    def __init__(self, limit: int, spool_dir: Path) -> None:
        self.limit = limit
        self.spool_dir = spool_dir
        self.part = _Part()
        self.parts = 0
        self._header_name = b""
        self._header_value = b""
        self.file: ReceivedFile | None = None
        self._handle: BinaryIO | None = None
        self._digest = hashlib.sha256()
        self.ended = False
        self.file_done = False

    # ---- callbacks (run inside parser.write) ----------------------------------------------
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ApiError(400, "too_many_parts", f"more than {MAX_PARTS} multipart parts")
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > MAX_FIELD_BYTES:
            raise ApiError(400, "malformed_multipart", "a part header is too long")

    def on_header_end(self) -> None:
        self.part.headers.append((self._header_name.lower(), self._header_value))
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        headers = dict(self.part.headers)
        disposition = headers.get(b"content-disposition")
        if disposition is None:
            raise ApiError(400, "malformed_multipart", "a part has no Content-Disposition header")
        _kind, options = parse_options_header(disposition)
        name = options.get(b"name")
        if name is None:
            raise ApiError(
                400, "malformed_multipart", 'a part\'s Content-Disposition has no "name"'
            )
        self.part.field_name = name.decode("utf-8", "replace")
        if self.part.field_name != FILE_FIELD:
            return
        if self.file is not None:
            raise ApiError(400, "too_many_files", "send one file per request (one `file` part)")
        extended = extended_filename(disposition)  # RFC 5987 filename*= wins over filename=
        raw_filename = options.get(b"filename") if extended is None else extended
        if raw_filename is None:
            raise ApiError(
                400, "missing_filename", "the `file` part has no filename in Content-Disposition"
            )
        filename = check_filename(raw_filename, percent_encoded=extended is None)
        content_type = headers.get(b"content-type")
        fd, spool = tempfile.mkstemp(prefix="upload-", dir=self.spool_dir)
        self._handle = os.fdopen(fd, "wb")
        self.part.is_file = True
        self.file = ReceivedFile(
            name=filename,
            path=Path(spool),
            size=0,
            sha256="",
            content_type=content_type.decode("latin-1") if content_type else None,
        )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        self.part.size += n
        if not self.part.is_file:
            if self.part.size > MAX_FIELD_BYTES:
                raise ApiError(
                    400, "field_too_large", f"a form field is over {MAX_FIELD_BYTES} bytes"
                )
            return
        if self.part.size > self.limit:
            raise ApiError(
                413,
                "payload_too_large",
                f"the file is larger than the limit of {self.limit} bytes (TL_MAX_ARTIFACT_BYTES)",
                details={"limit": self.limit},
            )
        chunk = data[start:end]
        self._digest.update(chunk)
        assert self._handle is not None
        self._handle.write(chunk)

    def on_part_end(self) -> None:
        if self.part.is_file and self.file is not None and self._handle is not None:
            self._handle.close()
            self._handle = None
            self.file.size = self.part.size
            self.file.sha256 = self._digest.hexdigest()
            self.file_done = True

    def on_end(self) -> None:
        self.ended = True

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.file is not None:
            self.file.discard()


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary of a ``Content-Type`` header, or a 400/415 naming the problem."""
    if not content_type:
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data with a `file` part")
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected multipart/form-data, got {kind.decode('latin-1')[:100]!r}",
        )
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise ApiError(400, "malformed_multipart", "the multipart boundary is missing or too long")
    return boundary


async def receive_upload(
    receive: Receive,
    headers: dict[str, str],
    *,
    limit: int,
    spool_dir: Path,
    read_timeout_s: float,
) -> ReceivedFile:
    """Read the request body from ``receive`` and return the uploaded file.

    Raises:
        ApiError: 400 malformed multipart / missing file / bad name, 408 slow client,
            413 over the limit, 415 not multipart.
        ClientDisconnected: the client went away (nothing is kept).
    """
    boundary = boundary_of(headers.get("content-type"))
    length = headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError as exc:
            raise ApiError(400, "bad_content_length", "Content-Length is not a number") from exc
        if declared > limit + ENVELOPE_BYTES:
            raise ApiError(
                413,
                "payload_too_large",
                f"the body ({declared} bytes) is larger than the limit of {limit} bytes "
                "(TL_MAX_ARTIFACT_BYTES)",
                details={"limit": limit},
            )
    spool_dir.mkdir(parents=True, exist_ok=True)
    receiver = _Receiver(limit, spool_dir)
    parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
    try:
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), read_timeout_s)
            except TimeoutError as exc:
                raise ApiError(
                    408,
                    "request_timeout",
                    f"no body data for {read_timeout_s:g} s (TL_API_READ_TIMEOUT_S)",
                ) from exc
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if chunk:
                parser.write(chunk)
        parser.finalize()
        if not receiver.ended:
            raise ApiError(
                400, "malformed_multipart", "the multipart body ends before its final boundary"
            )
        if receiver.file is None or not receiver.file_done:
            raise ApiError(400, "missing_file", "the body has no `file` part")
        return receiver.file
    except FormParserError as exc:
        receiver.abort()
        raise ApiError(400, "malformed_multipart", f"invalid multipart data: {exc}") from exc
    except BaseException:
        receiver.abort()
        raise
