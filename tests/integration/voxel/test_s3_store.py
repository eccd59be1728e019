"""The S3 object store against a real SeaweedFS server on loopback."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from thunderline.config import Settings
from thunderline.errors import ChecksumMismatch, ConfigError
from thunderline.objects.base import ObjectStore
from thunderline.objects.factory import open_object_store
from thunderline.objects.local import LocalObjectStore
from thunderline.objects.s3 import S3ObjectStore, parse_s3_url
from thunderline.obs import metrics
from thunderline.testing import run_stages

pytestmark = pytest.mark.services


def _store(make_settings: Callable[..., Settings], s3_url: str, s3_endpoint: str) -> S3ObjectStore:
    store = open_object_store(make_settings(object_store_url=s3_url, s3_endpoint_url=s3_endpoint))
    assert isinstance(store, S3ObjectStore)
    return store


def test_factory_picks_backends(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    local = open_object_store(make_settings())
    assert isinstance(local, LocalObjectStore)
    assert isinstance(local, ObjectStore)
    with pytest.raises(ConfigError):
        open_object_store(make_settings(object_store_url="ftp://x"))
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b/")
    with pytest.raises(ConfigError):
        parse_s3_url("s3:///nobucket")


def test_put_get_dedup_and_stream(
    make_settings: Callable[..., Settings], s3_url: str, s3_endpoint: str, tmp_path: Path
) -> None:
    store = _store(make_settings, s3_url, s3_endpoint)
    assert isinstance(store, ObjectStore)
    data = b"thunderline s3 payload " * 1000
    first = store.put_bytes(data)
    again = store.put_bytes(data)
    assert first == again and first.sha256 == hashlib.sha256(data).hexdigest()
    assert store.exists(first.sha256) and store.get_bytes(first.sha256) == data
    assert store.local_path(first.sha256) is None

    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 12_000)  # ~3 MB: multipart-capable upload path
    stored = store.put_file(big)
    out = io.BytesIO()
    assert store.copy_verified(stored.sha256, out) == big.stat().st_size
    assert out.getvalue() == big.read_bytes()

    missing = "0" * 64
    assert not store.exists(missing)
    with pytest.raises(KeyError):
        store.get_bytes(missing)


def test_corrupt_object_is_never_served(
    make_settings: Callable[..., Settings],
    s3_url: str,
    s3_endpoint: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _store(make_settings, s3_url, s3_endpoint)
    stored = store.put_bytes(b"original bytes")
    # tamper with the object behind the store's back
    store.client.put_object(Bucket=store.bucket, Key=store._key(stored.sha256), Body=b"evil")
    before = metrics.VOXEL_CHECKSUM_MISMATCH._value.get()
    with pytest.raises(ChecksumMismatch):
        store.get_bytes(stored.sha256)
    out = io.BytesIO()
    with pytest.raises(ChecksumMismatch):
        store.copy_verified(stored.sha256, out)
    assert out.getvalue() == b""  # nothing served
    assert metrics.VOXEL_CHECKSUM_MISMATCH._value.get() == before + 2
    assert "[security]" in caplog.text


async def test_classify_stage_with_s3_reads_only_the_admitted_descriptor(
    make_settings: Callable[..., Settings], s3_url: str, s3_endpoint: str, tmp_path: Path
) -> None:
    """A remote store has no local copy: Magika classifies through the admitted descriptor."""
    from thunderline.classify import ClassifyStage, iter_candidates
    from thunderline.runtime import ingest_event

    root = tmp_path / "in"
    root.mkdir()
    (root / "doc.json").write_text('{"name": "thunderline", "values": [1, 2, 3]}\n' * 20)
    settings = make_settings(object_store_url=s3_url, s3_endpoint_url=s3_endpoint)
    store = open_object_store(settings)
    events = [ingest_event(c) for c in iter_candidates([root])]
    ends = await run_stages([ClassifyStage(settings, store)], events)
    (event,) = ends
    assert not event.is_dlq, event.data
    assert event.data["classification"]["label"] in {"json", "jsonl"}
    sha = event.data["artifact"]["sha256"]
    assert store.get_bytes(sha) == (root / "doc.json").read_bytes()
