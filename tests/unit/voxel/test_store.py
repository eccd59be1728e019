"""The voxel store on SQLite: inline vs object payloads, verified reads, tampering, idempotency."""

from __future__ import annotations

import io
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from thunderline.config import Settings
from thunderline.errors import ChecksumMismatch
from thunderline.objects.local import LocalObjectStore
from thunderline.obs import metrics
from thunderline.voxel.builder import VoxelBuilder
from thunderline.voxel.db import head_revision
from thunderline.voxel.store import VoxelStore

from ._helpers import classified_event


def _mismatches() -> float:
    return float(metrics.VOXEL_CHECKSUM_MISMATCH._value.get())


@pytest.fixture
def objects(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def voxels(make_settings: Callable[..., Settings], objects: LocalObjectStore) -> VoxelStore:
    store = VoxelStore(make_settings(inline_payload_max_bytes=1024), objects)
    yield store  # type: ignore[misc]
    store.close()


def _db(voxels: VoxelStore) -> sqlite3.Connection:
    return sqlite3.connect(str(voxels.engine.url.database))


def test_first_use_migrates(voxels: VoxelStore) -> None:
    assert voxels.revision == head_revision()
    with _db(voxels) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert {"voxels", "voxel_edges", "voxel_payloads", "thunderline_voxel_version"} <= tables


def test_small_payload_inline_large_in_object_store(
    voxels: VoxelStore, objects: LocalObjectStore
) -> None:
    small = classified_event(objects, b"small text", name="s.txt")
    large_bytes = os.urandom(5000)
    large = classified_event(objects, large_bytes, name="l.bin", label="unknown", group="unknown")
    builder = VoxelBuilder()
    vs = voxels.put(builder.build(small)).voxel
    vl = voxels.put(builder.build(large)).voxel
    with _db(voxels) as conn:
        locations = dict(conn.execute("select id, payload_location from voxels"))
        inline = conn.execute("select count(*) from voxel_payloads").fetchone()[0]
    assert locations == {vs.id: "inline", vl.id: "object"}
    assert inline == 1
    assert voxels.read_payload(vs.id) == b"small text"
    assert voxels.read_payload(vl) == large_bytes
    out = io.BytesIO()
    assert voxels.copy_payload(vl, out) == 5000 and out.getvalue() == large_bytes
    assert all(r.ok for r in voxels.verify_all())


def test_same_bytes_same_source_or_same_event_give_the_existing_voxel(
    voxels: VoxelStore, objects: LocalObjectStore
) -> None:
    event = classified_event(objects, b"same bytes", source="file:///x/a.txt")
    first = voxels.put(VoxelBuilder().build(event))
    redelivered = voxels.put(VoxelBuilder().build(event))
    reingested = voxels.put(
        VoxelBuilder().build(classified_event(objects, b"same bytes", source="file:///x/a.txt"))
    )
    other_source = voxels.put(
        VoxelBuilder().build(classified_event(objects, b"same bytes", source="file:///x/b.txt"))
    )
    assert first.created and not redelivered.created and not reingested.created
    assert redelivered.voxel == first.voxel == reingested.voxel
    assert other_source.created and other_source.voxel.id != first.voxel.id
    assert voxels.count() == 2
    with _db(voxels) as conn:  # identical payloads stored once
        assert conn.execute("select count(*) from voxel_payloads").fetchone()[0] == 1
    assert voxels.find_by_event(event.id) == first.voxel
    assert voxels.find("file:///x/a.txt", first.voxel.payload_sha256) == first.voxel


def test_tampered_inline_payload_is_detected(
    voxels: VoxelStore, objects: LocalObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    voxel = voxels.put(VoxelBuilder().build(classified_event(objects, b"genuine"))).voxel
    with _db(voxels) as conn:
        conn.execute("update voxel_payloads set data = ?", (b"forged!",))
    before = _mismatches()
    caplog.set_level(logging.WARNING, "thunderline")
    with pytest.raises(ChecksumMismatch) as info:
        voxels.read_payload(voxel.id)
    assert info.value.expected == voxel.payload_sha256
    out = io.BytesIO()
    with pytest.raises(ChecksumMismatch):
        voxels.copy_payload(voxel.id, out)
    assert out.getvalue() == b""
    assert _mismatches() == before + 2
    assert "[security]" in caplog.text
    [result] = list(voxels.verify_all())
    assert not result.ok and result.reason == "checksum_mismatch"


def test_payload_corrupted_on_disk_is_detected(
    voxels: VoxelStore, objects: LocalObjectStore
) -> None:
    data = os.urandom(4096)  # above the 1 KiB inline limit: lives in the object store
    voxel = voxels.put(VoxelBuilder().build(classified_event(objects, data))).voxel
    path = objects.local_path(voxel.payload_sha256)
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])  # always a different first byte
    before = _mismatches()
    with pytest.raises(ChecksumMismatch):
        voxels.read_payload(voxel)
    out = io.BytesIO()
    with pytest.raises(ChecksumMismatch):
        voxels.copy_payload(voxel, out)
    assert out.getvalue() == b""
    assert _mismatches() == before + 2
    assert not voxels.verify(voxel.id).ok


def test_tampered_metadata_is_detected(voxels: VoxelStore, objects: LocalObjectStore) -> None:
    voxel = voxels.put(VoxelBuilder().build(classified_event(objects, b"meta"))).voxel
    forged = voxel.to_json().replace('"label":"txt"', '"label":"exe"')
    assert forged != voxel.to_json()
    with _db(voxels) as conn:
        conn.execute("update voxels set doc = ?", (forged,))
    with pytest.raises(ChecksumMismatch):
        voxels.get(voxel.id)
    assert voxels.verify(voxel.id).reason == "checksum_mismatch"


def test_query_filters_and_prefix_lookup(voxels: VoxelStore, objects: LocalObjectStore) -> None:
    builder = VoxelBuilder()
    txt = voxels.put(builder.build(classified_event(objects, b"t1", name="a.txt"))).voxel
    csv = voxels.put(
        builder.build(classified_event(objects, b"a,b\n", name="b.csv", label="csv"))
    ).voxel
    assert [v.id for v in voxels.query(label="csv")] == [csv.id]
    assert {v.id for v in voxels.query()} == {txt.id, csv.id}
    assert len(voxels.query(limit=1)) == 1
    from datetime import UTC, datetime, timedelta

    assert voxels.query(since=datetime.now(UTC) + timedelta(hours=1)) == []
    assert voxels.get(csv.id[:30]) == csv
