"""Listing a source -- a folder (``os.scandir``, no symlinks followed) or an S3 prefix.

A scan yields :class:`Seen` -- key, size, mtime (ns) and, for S3, the ETag -- and nothing is
read: comparing a listing with the ledger (:func:`diff_dir`, which compares while it walks, and
:func:`diff_listing`) decides what must be read at all.
"""

from __future__ import annotations

import os
import stat as stat_mod
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from thunderline import names as names_mod
from thunderline.config import Settings
from thunderline.errors import BackendError, ConfigError
from thunderline.sources.ledger import DELETED, DONE, SUBMITTED, Folders, KnownRow, Snapshot


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


@dataclass
class Diff:
    """A listing compared with a ledger :class:`~thunderline.sources.ledger.Snapshot`.

    ``acting`` holds the entries a pass must act on (new, changed, or ``submitted`` by a pass
    that stopped), each with its ledger row (None when new); ``gone`` the ids of live entries
    no longer listed. ``unchanged`` and ``settling`` are counts only: no object is kept for them.
    """

    seen: int = 0
    unchanged: int = 0
    settling: int = 0
    acting: list[tuple[Seen, KnownRow | None]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


def _verdict(diff: Diff, seen: Seen, row: KnownRow | None, settle_ns: int, now_ns: int) -> None:
    """The rule for one listed entry against its ledger row (None: the ledger has none).

    Unchanged: a ``done`` (not ``submitted``, not ``deleted``) entry with the same ETag and
    size (both listings have an ETag: S3) or the same size and mtime. A ``submitted`` entry is
    acted on at once (resumed); anything else modified less than ``settle_ns`` ago waits
    (settling); the rest is new or changed.
    """
    if row is not None:
        state = row[4]
        if state != DELETED and state != SUBMITTED:
            if seen.etag is not None and row[3] is not None:
                same = row[3] == seen.etag and row[1] == seen.size
            else:
                same = row[1] == seen.size and row[2] == seen.mtime_ns
            if same:
                diff.unchanged += 1
                return
        elif state == SUBMITTED:
            diff.acting.append((seen, row))
            return
    if now_ns - seen.mtime_ns < settle_ns:
        diff.settling += 1
        return
    diff.acting.append((seen, row))


def _gone(folders: Folders, listed: dict[str, list[str]], into: list[str]) -> None:
    """Ids of the live entries whose name is not in their folder's ``listed`` names."""
    wire = names_mod.wire_text
    for folder, rows in folders.items():
        here = listed.get(folder)
        present = {n if n.isascii() else wire(n) for n in here} if here else set()
        into.extend(
            row[0] for name, row in rows.items() if row[4] != DELETED and name not in present
        )


def diff_dir(root: Path, snapshot: Snapshot, settle_ns: int, now_ns: int) -> Diff:
    """Walk ``root`` as :func:`scan_dir` does and compare each file with ``snapshot`` on the way.

    The hot loop of a pass over an unchanged tree: each folder's ledger rows are looked up once,
    each file by its name in them (no path string, tuple or dict entry is made for a file that
    did not change: a ``done`` row with the file's size and mtime is counted and forgotten);
    anything else goes through :func:`_verdict`. A walk that matched fewer live entries than
    the snapshot has looks for the deleted ones (names of the listed files are kept per folder
    for that).
    """
    is_reg = stat_mod.S_ISREG
    wire = names_mod.wire_text
    folders = snapshot.folders
    no_rows: dict[str, KnownRow] = {}
    diff = Diff()
    listed: dict[str, list[str]] = {}
    unchanged = seen = live_hits = 0
    stack = [("", str(root))]
    while stack:
        rel, folder = stack.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue  # vanished or unreadable: its entries are simply not seen this pass
        stored_rel = rel if rel.isascii() else wire(rel)  # the ledger's spelling of the folder
        here = listed[stored_rel] = []
        add = here.append
        get = folders.get(stored_rel, no_rows).get
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((f"{rel}{entry.name}/", entry.path))
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if not is_reg(st.st_mode):
                    continue
                name = entry.name
                add(name)
                row = get(name)
                if (
                    row is not None
                    and row[2] == st.st_mtime_ns
                    and row[1] == st.st_size
                    and row[4] == DONE
                ):
                    unchanged += 1  # the fast path: exactly _verdict's unchanged (no ETag here)
                    continue
                seen += 1
                if row is None and not name.isascii():
                    row = get(wire(name))
                if row is not None and row[4] != DELETED:
                    live_hits += 1
                _verdict(diff, Seen(rel + name, st.st_size, st.st_mtime_ns), row, settle_ns, now_ns)
    diff.unchanged += unchanged
    diff.seen = seen + unchanged
    if unchanged + live_hits < snapshot.live:
        _gone(folders, listed, diff.gone)
    return diff


def diff_listing(items: Iterable[Seen], snapshot: Snapshot, settle_ns: int, now_ns: int) -> Diff:
    """:func:`diff_dir` for a listing that is not a folder walk (an S3 prefix)."""
    wire = names_mod.wire_text
    folders = snapshot.folders
    diff = Diff()
    listed: dict[str, list[str]] = {}
    live_hits = 0
    for seen in items:
        diff.seen += 1
        stored = seen.key if seen.key.isascii() else wire(seen.key)
        cut = stored.rfind("/") + 1
        folder, name = stored[:cut], stored[cut:]
        listed.setdefault(folder, []).append(name)
        row = folders.get(folder, {}).get(name)
        if row is not None and row[4] != DELETED:
            live_hits += 1
        _verdict(diff, seen, row, settle_ns, now_ns)
    if live_hits < snapshot.live:
        _gone(folders, listed, diff.gone)
    return diff


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
