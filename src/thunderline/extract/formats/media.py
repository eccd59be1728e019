"""Metadata of media, fonts and certificates (no body text; a damaged header is a warning).

- audio and video: **mutagen** (ID3, Vorbis comments, FLAC, MP4 atoms, RIFF...): duration,
  title, artist, album, date and the raw tags;
- images: **Pillow** (size, EXIF with the GPS IFD decoded to degrees, camera model and
  taken-at time, XMP packet fields ``dc:title`` / ``dc:creator``);
- fonts: **fontTools** (the ``name`` table: family, style, full name, version, designer);
- certificates (PEM or DER): **cryptography** (subject, issuer, validity, serial, SANs).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from thunderline.extract.base import ExtractContext, TextBuilder, read_head, result
from thunderline.extract.result import DocMetadata, ExtractResult, GeoPoint

_TAG_NAMES = {
    "title": ("TIT2", "title", "\xa9nam", "TITLE", "INAM"),
    "artist": ("TPE1", "artist", "\xa9ART", "ARTIST", "IART"),
    "album": ("TALB", "album", "\xa9alb", "ALBUM", "IPRD"),
    "date": ("TDRC", "date", "\xa9day", "DATE", "ICRD", "TYER"),
    "language": ("TLAN", "language", "LANGUAGE"),
    "encoder": ("TSSE", "encoder", "\xa9too", "ENCODER", "ISFT"),
}


def _first(tags: Any, keys: tuple[str, ...], present: frozenset[str] | None = None) -> str | None:
    """The first non-blank value of ``keys`` in ``tags``.

    ``present``: the lower-cased keys the tags hold; a key not among them is not looked up (a
    ``get`` on mutagen's tag mappings costs a Python call chain even for a miss). Lower-cased
    because Vorbis and APE tags match keys case-insensitively.
    """
    if tags is None:
        return None
    for key in keys:
        if present is not None and key.lower() not in present:
            continue
        try:
            value = tags.get(key) if hasattr(tags, "get") else None
        except (KeyError, ValueError, TypeError):
            value = None
        if value is None:
            continue
        if hasattr(value, "text"):
            value = value.text
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def extract_audio_video(path: Path, ctx: ExtractContext) -> ExtractResult:
    """Audio and video tags and stream facts through **mutagen**; no text.

    Title, artist, album, date, language and duration as metadata; bit rate, sample rate,
    channels, codec, size and the other tags (pictures and binary blobs left out) in ``raw``.
    Unreadable or missing tags are a warning, not a failure.
    """
    import mutagen

    meta: DocMetadata | None = None  # result() fills in an empty one
    raw: dict[str, Any] = {}
    try:
        media = mutagen.File(str(path))
    except (mutagen.MutagenError, ValueError, KeyError, IndexError, OverflowError) as exc:
        ctx.warn(f"tags unreadable: {type(exc).__name__}: {exc}")
        media = None
    if media is None:
        ctx.warn("no audio/video tags found")
    else:
        info = getattr(media, "info", None)
        length = getattr(info, "length", None)
        for attr in (
            "bitrate",
            "sample_rate",
            "channels",
            "bits_per_sample",
            "codec",
            "width",
            "height",
        ):
            value = getattr(info, attr, None)
            if value not in (None, ""):
                raw[attr] = value
        tags = media.tags
        present: frozenset[str] | None = None
        if tags is not None:
            tag_keys = list(tags.keys())
            present = frozenset(str(key).lower() for key in tag_keys)
            for key in tag_keys[:64]:
                if str(key).startswith(("APIC", "covr", "metadata_block_picture", "PRIV", "GEOB")):
                    continue  # pictures and binary blobs
                value = _first(tags, (key,))
                if value:
                    raw[str(key)] = value
        named = {name: _first(tags, keys, present) for name, keys in _TAG_NAMES.items()}
        raw.update({k: v for k, v in named.items() if v})
        raw["format"] = type(media).__name__
        meta = DocMetadata(
            title=named["title"],
            authors=[named["artist"]] if named["artist"] else [],
            subject=named["album"],
            created=_year_date(named["date"]),
            language=named["language"],
            duration_s=round(float(length), 3)
            if isinstance(length, int | float) and length >= 0
            else None,
            width=raw.get("width") if isinstance(raw.get("width"), int) else None,
            height=raw.get("height") if isinstance(raw.get("height"), int) else None,
            software=named["encoder"],
        )
    return result(
        ctx,
        "media",
        "mutagen",
        None,
        content="none",
        metadata=meta,
        raw=raw,
        bytes_in=path.stat().st_size,
    )


def _year_date(value: str | None) -> datetime | None:
    if not value:
        return None
    match = re.match(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", value)
    if not match:
        return None
    try:
        return datetime(
            int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1), tzinfo=UTC
        )
    except ValueError:
        return None


# ---- images ---------------------------------------------------------------------------------
def _open_size(handle: Any) -> int | None:
    """Size of the file the library opened (``fstat`` on its handle: no second path lookup)."""
    try:
        return os.fstat(handle.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})")


def _exif_date(value: Any) -> datetime | None:
    match = _EXIF_DATE.match(str(value or ""))
    if not match:
        return None
    try:
        y, mo, d, h, mi, sec = map(int, match.groups())
        return datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
    except ValueError:
        return None


def _real(value: Any) -> float:
    """A number of an EXIF IFD as a float.

    Pillow's ``IFDRational`` through its own numerator and denominator: ``float()`` goes
    through three Python calls (``__float__`` delegates to a ``Fraction``), 2.5x slower.
    A zero denominator raises ``ZeroDivisionError`` (``float()`` gave NaN: out of range too).
    """
    if type(value) is float:  # Pillow gives GPS parts as floats: no AttributeError raised
        return value
    try:
        return float(value.numerator / value.denominator)
    except AttributeError:  # no rational at all
        return float(value)


def _degrees(value: Any, ref: Any) -> float | None:
    try:
        if type(value) is tuple and len(value) == 3:  # the EXIF shape: no generator made
            d, m, s = _real(value[0]), _real(value[1]), _real(value[2])
        else:
            d, m, s = (_real(x) for x in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60.0 + s / 3600.0
    return -deg if str(ref).upper() in ("S", "W") else deg


def _gps(gps: dict[int, Any]) -> GeoPoint | None:
    lat = _degrees(gps.get(2), gps.get(1))
    lon = _degrees(gps.get(4), gps.get(3))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    alt: float | None = None
    if gps.get(6) is not None:
        try:
            try:
                height = _real(gps[6])  # float() of an IFDRational is three Python calls
            except ZeroDivisionError:
                height = float(gps[6])  # NaN, as float() gave it
            alt = height * (-1.0 if gps.get(5) in (1, b"\x01") else 1.0)
        except (TypeError, ValueError, ZeroDivisionError):
            alt = None
    return GeoPoint(lat=round(lat, 7), lon=round(lon, 7), alt_m=alt)


_XMP_FIELD = re.compile(
    r"<dc:(title|creator|description|subject)>\s*<rdf:(?:Alt|Seq|Bag)>(.*?)</rdf:(?:Alt|Seq|Bag)>",
    re.DOTALL,
)
_XMP_LI = re.compile(r"<rdf:li[^>]*>(.*?)</rdf:li>", re.DOTALL)


def _xmp(image: Any) -> dict[str, list[str]]:
    """``dc:*`` fields of the XMP packet.

    A regular-expression read: no XML entity is ever expanded.
    """
    packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if not packet:
        return {}
    text = packet.decode("utf-8", "replace") if isinstance(packet, bytes) else str(packet)
    out: dict[str, list[str]] = {}
    for name, body in _XMP_FIELD.findall(text[:1_000_000]):
        values = [" ".join(v.split()) for v in _XMP_LI.findall(body) if v.strip()]
        if values:
            out[name] = values
    return out


def extract_image(path: Path, ctx: ExtractContext) -> ExtractResult:
    """Image metadata through **Pillow** (format, size, EXIF, XMP), and its text by OCR if on.

    Binary EXIF values are left out; with ``ctx.ocr`` the image's lines are recognised by the
    configured OCR engine and the result carries an ``ocr`` summary.
    """
    from PIL import ExifTags, Image, UnidentifiedImageError

    raw: dict[str, Any] = {}
    meta: DocMetadata | None = None  # result() fills in an empty one
    size: int | None = None
    try:
        with Image.open(path) as image:
            size = _open_size(image.fp)
            raw["format"] = image.format
            raw["mode"] = image.mode
            frames = getattr(image, "n_frames", 1)
            exif = image.getexif()
            names = ExifTags.TAGS
            binary = (bytes, bytearray)  # a tuple: ``bytes | bytearray`` is built on each use
            for tag, value in exif.items():
                if isinstance(value, binary):
                    continue
                name = names.get(tag) or str(tag)
                if name != "MakerNote":
                    raw[name] = value
            sub = exif.get_ifd(ExifTags.IFD.Exif)
            for tag, value in sub.items():
                if not isinstance(value, binary):
                    raw[names.get(tag) or str(tag)] = value
            gps_ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
            xmp = _xmp(image)
            for name, values in xmp.items():
                raw[f"xmp:dc:{name}"] = "; ".join(values)
            make = str(raw.get("Make", "")).strip()
            model = f"{make} {str(raw.get('Model', '')).strip()}".strip()
            meta = DocMetadata(
                title=(xmp.get("title") or [""])[0]
                or (
                    str(raw["ImageDescription"]).strip() or None
                    if raw.get("ImageDescription")
                    else None
                ),
                authors=xmp.get("creator")
                or ([str(raw["Artist"]).strip()] if raw.get("Artist") else []),
                created=_exif_date(raw.get("DateTimeOriginal") or raw.get("DateTime")),
                width=image.width,
                height=image.height,
                page_count=frames if frames > 1 else None,
                gps=_gps(dict(gps_ifd)) if gps_ifd else None,
                software=model or (str(raw["Software"]) if raw.get("Software") else None),
            )
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
    ) as exc:
        ctx.warn(f"image header unreadable: {type(exc).__name__}: {exc}")
    builder: TextBuilder | None = None
    ocr_info = None
    if ctx.ocr and meta is not None and meta.width:
        builder, ocr_info = _ocr_image(path, ctx, raw)
    found = result(
        ctx,
        "image",
        "pillow",
        builder,
        content="prose",
        metadata=meta,
        raw=raw,
        bytes_in=path.stat().st_size if size is None else size,
    )
    return replace(found, ocr=ocr_info) if ocr_info is not None else found


def _ocr_image(path: Path, ctx: ExtractContext, raw: dict[str, Any]) -> tuple[TextBuilder, Any]:
    """The image's text by OCR (each line with its confidence; low ones listed in ``raw``)."""
    from PIL import Image

    from thunderline.extract import ocr

    builder = TextBuilder(ctx.max_text_bytes)
    problem = ocr.available(ctx.ocr_engine, ctx.ocr_languages)
    if problem is not None:
        ctx.warn(f"OCR skipped: {problem}")
        return builder, None
    note = ocr.language_note(ctx.ocr_engine, ctx.ocr_languages)
    if note:
        ctx.warn(note)
    with Image.open(path) as image:
        image.seek(0)
        lines = ocr.recognise(image, ctx.progress, ctx.ocr_engine, languages=ctx.ocr_languages)
    for line in lines:
        builder.line(line.text)
    low = ocr.low_confidence_note(lines)
    if low:
        raw["ocr_low_confidence"] = "; ".join(low)
    return builder, ocr.info(lines, ctx.ocr_engine)


# ---- fonts ----------------------------------------------------------------------------------
_FONT_NAMES = {
    1: "family",
    2: "subfamily",
    4: "full_name",
    5: "version",
    8: "manufacturer",
    9: "designer",
    13: "license",
}


def extract_font(path: Path, ctx: ExtractContext) -> ExtractResult:
    """A font's ``name`` table (family, style, version, designer...) and glyph count (fontTools).

    Only the first font of a collection is read, lazily.
    """
    from fontTools.ttLib import TTFont, TTLibError

    raw: dict[str, Any] = {}
    meta: DocMetadata | None = None  # result() fills in an empty one
    size: int | None = None
    try:
        with TTFont(str(path), lazy=True, fontNumber=0) as font:
            size = _open_size(font.reader.file)
            table = font.get("name", None)
            if table is not None:
                for name_id, key in _FONT_NAMES.items():
                    record = table.getDebugName(name_id)
                    if record:
                        raw[key] = record
            raw["glyphs"] = font["maxp"].numGlyphs if "maxp" in font else None
            meta = DocMetadata(
                title=raw.get("full_name") or raw.get("family"),
                authors=[raw["designer"]] if raw.get("designer") else [],
                software=raw.get("manufacturer"),
            )
    except (TTLibError, OSError, KeyError, AssertionError, ValueError, IndexError) as exc:
        ctx.warn(f"font tables unreadable: {type(exc).__name__}: {exc}")
    return result(
        ctx,
        "font",
        "fonttools",
        None,
        content="none",
        metadata=meta,
        raw=raw,
        bytes_in=path.stat().st_size if size is None else size,
    )


# ---- certificates ---------------------------------------------------------------------------
def extract_certificate(path: Path, ctx: ExtractContext) -> ExtractResult:
    """X.509 certificates (PEM, one or more, or a single DER) through **cryptography**.

    Subject, issuer, serial number and validity of each (at most 64, read from the first
    4 MiB); an unreadable certificate is a warning.
    """
    from cryptography import x509

    data, _longer = read_head(path, 4 * 1024 * 1024)
    certificates: list[Any] = []
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            certificates = x509.load_pem_x509_certificates(data)
        elif b"-----BEGIN" not in data:
            certificates = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        ctx.warn(f"certificate unreadable: {exc}")
    san_oid = x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME
    raw: dict[str, Any] = {"certificates": len(certificates)}
    meta: DocMetadata | None = None  # result() fills in an empty one
    for index, cert in enumerate(certificates[:64]):
        ctx.progress()
        subject_name = cert.subject
        subject = subject_name.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()  # once: each call re-escapes every attribute
        not_before = cert.not_valid_before_utc  # each read builds a new datetime
        raw[f"{index}.subject"] = subject
        raw[f"{index}.issuer"] = issuer
        raw[f"{index}.serial"] = format(cert.serial_number, "x")
        raw[f"{index}.not_before"] = not_before.isoformat()
        raw[f"{index}.not_after"] = cert.not_valid_after_utc.isoformat()
        for extension in cert.extensions:  # a lookup by class raises when it is absent
            if extension.oid == san_oid:
                names_ = extension.value.get_values_for_type(x509.DNSName)
                raw[f"{index}.san"] = ", ".join(str(v) for v in names_)
        if index == 0:
            names = subject_name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            meta = DocMetadata(
                title=str(names[0].value) if names else subject,
                authors=[issuer],
                created=not_before,
            )
    return result(
        ctx,
        "certificate",
        "cryptography",
        None,
        content="none",
        metadata=meta,
        raw=raw,
        bytes_in=len(data),
    )


__all__ = ["extract_audio_video", "extract_certificate", "extract_font", "extract_image"]
