"""Listing a folder for sync: regular files only, keys relative with ``/``, no symlink followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from thunderline.errors import ConfigError
from thunderline.sources.scan import parse_source, scan_dir


def test_scan_lists_regular_files_with_relative_keys(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "top.txt").write_text("1")
    (tmp_path / "a" / "b" / "deep.txt").write_text("22")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not a source entry")
    os.symlink(outside, tmp_path / "linked-dir")
    os.symlink(tmp_path / "top.txt", tmp_path / "linked-file")
    os.mkfifo(tmp_path / "fifo")
    seen = {s.key: s for s in scan_dir(tmp_path)}
    assert set(seen) == {"top.txt", "a/b/deep.txt"}
    assert seen["a/b/deep.txt"].size == 2
    assert seen["top.txt"].mtime_ns == (tmp_path / "top.txt").stat().st_mtime_ns


def test_parse_source(tmp_path: Path) -> None:
    assert parse_source(str(tmp_path)).uri == tmp_path.as_uri()
    assert parse_source(tmp_path.as_uri()).path == tmp_path
    s3 = parse_source("s3://bucket/some/prefix/")
    assert (s3.kind, s3.bucket, s3.prefix, s3.uri) == (
        "s3",
        "bucket",
        "some/prefix/",
        "s3://bucket/some/prefix/",
    )
    assert s3.entry_uri("a/b.txt") == "s3://bucket/some/prefix/a/b.txt"
    assert parse_source("s3://bucket").prefix == ""
    with pytest.raises(ConfigError):
        parse_source("s3://")
    with pytest.raises(ConfigError):
        parse_source(str(tmp_path / "missing"))
