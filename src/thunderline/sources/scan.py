"""Listing a source: a local folder (``os.scandir``, no symlinks followed) or an S3 prefix.

A scan yields :class:`Seen` -- key, size, mtime (ns) and, for S3, the ETag -- and nothing is
read: comparing a scan with the ledger decides what must be read at all.
"""

from __future__ import annotations

import os
import stat as stat_mod
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from thunderline.config import Settings
from thunderline.errors import BackendError, ConfigError


class Seen(NamedTuple):
    """One entry as listed now (a tuple: a scan makes one per file, cheaply)."""

    key: str  # relative path with ``/`` separators, or the object key below the prefix
    size: int
    mtime_ns: int
    etag: str | None = None


@dataclass(frozen=True)
class SourceUri:
    """A parsed source: ``file:///abs/folder`` (or a plain path) or ``s3://bucket/prefix``."""

    uri: str
    kind: str  # "dir" | "s3"
    path: Path | None = None
    bucket: str = ""
    prefix: str = ""

    def entry_uri(self, key: str) -> str:
        """The artifact source of one entry (what its voxel's ``source`` says)."""
        if self.path is not None:
            return (self.path / key).as_uri()
        return f"s3://{self.bucket}/{self.prefix}{key}"


def parse_source(given: str) -> SourceUri:
    """A folder path, ``file://`` URI or ``s3://bucket[/prefix]`` as a :class:`SourceUri`."""
    if given.startswith("s3://"):
        bucket, _, prefix = given.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"s3 source has no bucket: {given!r}")
        prefix = prefix.strip("/")
        prefix = f"{prefix}/" if prefix else ""
        return SourceUri(f"s3://{bucket}/{prefix}", "s3", bucket=bucket, prefix=prefix)
    if given.startswith("file://"):
        given = unquote(urlsplit(given).path)
    path = Path(os.path.abspath(given))
    if not path.is_dir():
        raise ConfigError(f"source {given!r} is not a folder (or an s3:// prefix)")
    return SourceUri(path.as_uri(), "dir", path=path)


def scan_dir(root: Path) -> Iterator[Seen]:
    """Every regular file below ``root`` (symlinks and special files are not sources)."""
    is_reg = stat_mod.S_ISREG
    stack = [("", str(root))]
    while stack:
        rel, folder = stack.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue  # vanished or unreadable: its entries are simply not seen this pass
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((f"{rel}{entry.name}/", entry.path))
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if is_reg(st.st_mode):
                    yield Seen(rel + entry.name, st.st_size, st.st_mtime_ns, None)


#: What a listing keeps of an entry: ``(size, mtime_ns, etag)``, a plain tuple (no per-file
#: object is built for the unchanged entries a pass compares and forgets).
Stat = tuple[int, int, str | None]


def list_dir(root: Path) -> dict[str, Stat]:
    """:func:`scan_dir` as ``{key: (size, mtime_ns, None)}``.

    The same walk, the cheapest result (a sync pass over an unchanged tree compares and discards
    almost all of it).
    """
    is_reg = stat_mod.S_ISREG
    out: dict[str, Stat] = {}
    stack = [("", str(root))]
    while stack:
        rel, folder = stack.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((f"{rel}{entry.name}/", entry.path))
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if is_reg(st.st_mode):
                    out[rel + entry.name] = (st.st_size, st.st_mtime_ns, None)
    return out


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client with the object store's endpoint and timeouts."""
    from thunderline.objects.s3 import S3ObjectStore

    store = S3ObjectStore(
        "s3://unused",
        endpoint_url=settings.s3.endpoint_url,
        create_bucket=False,
        connect_timeout_s=settings.s3.connect_timeout_s,
        read_timeout_s=settings.s3.read_timeout_s,
        max_attempts=settings.s3.max_attempts,
    )
    return store.client


def scan_s3(client: Any, source: SourceUri) -> Iterator[Seen]:
    """Every object below the prefix (folder markers ending in ``/`` skipped)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=source.bucket, Prefix=source.prefix
        )
        for page in pages:
            for obj in page.get("Contents", ()):
                key = str(obj["Key"])
                if key.endswith("/"):
                    continue
                mtime_ns = int(obj["LastModified"].timestamp() * 1_000_000_000)
                etag = str(obj.get("ETag", "")).strip('"') or None
                yield Seen(key[len(source.prefix) :], int(obj["Size"]), mtime_ns, etag)
    except (BotoCoreError, ClientError) as exc:
        raise BackendError(f"cannot list {source.uri}: {exc}") from exc


def fetch_s3(client: Any, source: SourceUri, key: str, tmp_dir: Path | None) -> Path:
    """Download one object to a private temp file (the caller removes it)."""
    from botocore.exceptions import BotoCoreError, ClientError

    fd, name = tempfile.mkstemp(prefix="tl-source-", dir=tmp_dir)
    try:
        with open(fd, "wb") as out:
            body = client.get_object(Bucket=source.bucket, Key=f"{source.prefix}{key}")["Body"]
            for chunk in iter(lambda: body.read(1 << 20), b""):
                out.write(chunk)
    except (BotoCoreError, ClientError) as exc:
        Path(name).unlink(missing_ok=True)
        raise BackendError(f"cannot read {source.entry_uri(key)}: {exc}") from exc
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)
