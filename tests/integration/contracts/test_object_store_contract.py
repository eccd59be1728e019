"""The ObjectStore contract, run over every store (``OBJECT_STORE_FACTORIES``): content
addressing, dedup, streaming, verified reads, typed errors."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from thunderline.errors import ArtifactNotFoundError, ChecksumMismatch, PayloadNotFound
from thunderline.objects.base import CHUNK, ObjectStore
from thunderline.obs import metrics

from .conftest import StoreUnderTest, sha256_of

MISSING = "0" * 64


def _mismatches() -> float:
    return metrics.sample("thunderline_voxel_checksum_mismatch_total", {}) or 0.0


def test_it_is_an_object_store_with_a_url_and_a_root(object_store: StoreUnderTest) -> None:
    store = object_store.store
    assert isinstance(store, ObjectStore)
    assert store.url.split("://", 1)[0] in {"file", "s3"}
    assert store.root is None or (store.root / "tmp").is_dir()


@pytest.mark.parametrize(
    "payload", [b"", b"hello", os.urandom(70_000)], ids=["empty", "small", "70k"]
)
def test_put_bytes_then_read_back_by_address(object_store: StoreUnderTest, payload: bytes) -> None:
    store = object_store.store
    stored = store.put_bytes(payload)
    assert stored.sha256 == sha256_of(payload) and stored.size == len(payload)
    assert stored.ref == f"sha256:{stored.sha256}"
    assert store.exists(stored.sha256)
    assert store.get_bytes(stored.sha256) == payload
    out = io.BytesIO()
    assert store.copy_verified(stored.sha256, out) == len(payload)
    assert out.getvalue() == payload


def test_identical_bytes_have_one_address(object_store: StoreUnderTest, tmp_path: Path) -> None:
    store = object_store.store
    first = store.put_bytes(b"same bytes")
    path = tmp_path / "same.bin"
    path.write_bytes(b"same bytes")
    assert store.put_file(path) == first
    assert store.put_bytes(b"same bytes") == first


def test_put_file_streams_a_file_larger_than_a_chunk(
    object_store: StoreUnderTest, tmp_path: Path
) -> None:
    store = object_store.store
    big = tmp_path / "big.bin"
    data = os.urandom(2 * CHUNK + 123)
    big.write_bytes(data)
    stored = store.put_file(big)
    assert (stored.sha256, stored.size) == (sha256_of(data), len(data))
    out = io.BytesIO()
    assert store.copy_verified(stored.sha256, out) == len(data)
    assert out.getvalue() == data


def test_a_missing_payload_is_payload_not_found(object_store: StoreUnderTest) -> None:
    store = object_store.store
    assert not store.exists(MISSING)
    with pytest.raises(PayloadNotFound) as info:
        store.get_bytes(MISSING)
    assert isinstance(info.value, ArtifactNotFoundError) and info.value.reason == "not_found"
    assert MISSING in str(info.value)
    with pytest.raises(PayloadNotFound):
        store.copy_verified(MISSING, io.BytesIO())
    assert store.local_path(MISSING) is None


def test_corrupt_bytes_are_never_served(object_store: StoreUnderTest) -> None:
    store = object_store.store
    stored = store.put_bytes(b"genuine payload " * 100)
    object_store.corrupt(stored.sha256, b"forged payload " * 100)
    before = _mismatches()
    with pytest.raises(ChecksumMismatch) as info:
        store.get_bytes(stored.sha256)
    assert info.value.expected == stored.sha256
    out = io.BytesIO()
    with pytest.raises(ChecksumMismatch):
        store.copy_verified(stored.sha256, out)
    assert out.getvalue() == b""  # nothing reaches the destination
    assert _mismatches() == before + 2


def test_local_path_when_there_is_one_holds_the_bytes(object_store: StoreUnderTest) -> None:
    store = object_store.store
    stored = store.put_bytes(b"local or not")
    path = store.local_path(stored.sha256)
    if store.root is None:
        assert path is None
    else:
        assert path is not None and path.read_bytes() == b"local or not"


def test_put_fd_streams_from_a_descriptor_within_a_limit(
    object_store: StoreUnderTest, tmp_path: Path
) -> None:
    store = object_store.store
    path = tmp_path / "in.bin"
    data = os.urandom(CHUNK + 7)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        stored = store.put_fd(fd, max_bytes=len(data))
    finally:
        os.close(fd)
    assert (stored.sha256, stored.size) == (sha256_of(data), len(data))
    assert store.get_bytes(stored.sha256) == data
