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
from thunderline.errors import BackendError, ChecksumMismatch
from thunderline.objects.local import LocalObjectStore
from thunderline.obs import metrics
from thunderline.voxel.builder import VoxelBuilder
from thunderline.voxel.db import head_revision
from thunderline.voxel.errors import InvalidVoxelError, PayloadMissingError, VoxelNotFoundError
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


def _corrupt_object(objects: LocalObjectStore, sha: str) -> Path:
    path = objects.local_path(sha)
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(b"corrupted on disk")
    return path


def test_verify_checks_the_object_copy_of_an_inline_payload(
    voxels: VoxelStore, objects: LocalObjectStore
) -> None:
    voxel = voxels.put(VoxelBuilder().build(classified_event(objects, b"small inline"))).voxel
    assert voxels.verify(voxel.id).ok
    _corrupt_object(objects, voxel.payload_sha256)  # the inline row is still good
    assert voxels.read_payload(voxel) == b"small inline"  # reads use the inline copy
    result = voxels.verify(voxel.id)
    assert not result.ok and result.reason == "checksum_mismatch"
    assert "object copy hashes to" in result.detail


def test_verify_checks_every_index_column_against_the_sealed_document(
    voxels: VoxelStore, objects: LocalObjectStore
) -> None:
    voxel = voxels.put(VoxelBuilder().build(classified_event(objects, b"labelled"))).voxel
    with _db(voxels) as conn:
        conn.execute("update voxels set label = 'exe', payload_size = 1")
    assert [v.id for v in voxels.query(label="exe")] == [voxel.id]  # the index lies ...
    result = voxels.verify(voxel.id)  # ... and verify says so
    assert not result.ok and result.reason == "index_mismatch"
    assert "column label is 'exe', sealed 'txt'" in result.detail
    assert "column payload_size is 1, sealed 8" in result.detail
    with _db(voxels) as conn:
        conn.execute("update voxels set label = 'txt', payload_size = 8, source = 'file:///x'")
    result = voxels.verify(voxel.id)
    assert (
        not result.ok
        and "column source" in result.detail
        and "column dedup_key" not in result.detail
    )


def test_a_write_that_finds_a_corrupt_object_replaces_it(
    voxels: VoxelStore, objects: LocalObjectStore, tmp_path: Path
) -> None:
    data = os.urandom(4096)
    stored = objects.put_bytes(data)
    path = _corrupt_object(objects, stored.sha256)
    before = _mismatches()
    assert objects.put_bytes(data) == stored  # the write re-hashes what it found
    assert path.read_bytes() == data and _mismatches() == before + 1
    _corrupt_object(objects, stored.sha256)
    source = tmp_path / "again.bin"
    source.write_bytes(data)
    fd = os.open(source, os.O_RDONLY)
    try:
        assert objects.put_fd(fd) == stored
    finally:
        os.close(fd)
    assert objects.get_bytes(stored.sha256) == data
    assert objects.put_bytes(data) == stored and _mismatches() == before + 2  # good: kept


def test_stale_temp_objects_are_removed_at_start_up(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    old = store.root / "tmp" / "tmpabandoned"
    old.write_bytes(b"half a copy")
    os.utime(old, (1, 1))
    fresh = store.root / "tmp" / "tmplive"
    fresh.write_bytes(b"a live copy")
    again = LocalObjectStore(tmp_path / "objects", tmp_max_age_s=3600)
    assert again.removed_temps == 1
    assert not old.exists() and fresh.exists()


def test_a_batch_mixing_new_stored_and_clashing_voxels(
    voxels: VoxelStore, objects: LocalObjectStore
) -> None:
    stored = voxels.put(VoxelBuilder().build(classified_event(objects, b"stored", source="s:a")))
    new = VoxelBuilder().build(classified_event(objects, b"new", source="s:a"))
    again = VoxelBuilder().build(classified_event(objects, b"stored", source="s:a"))
    results = voxels.put_many([(new, None), (again, None)])
    assert [r.created for r in results] == [True, False]
    assert results[1].voxel == stored.voxel  # the stored row, not the rebuilt one
    # another voxel under an id already taken: refused, and nothing of the batch is written
    clash = VoxelBuilder().build(
        classified_event(objects, b"other", source="s:a"), voxel_id=stored.voxel.id
    )
    fresh = VoxelBuilder().build(classified_event(objects, b"fresh", source="s:a"))
    with pytest.raises(InvalidVoxelError, match="already used"):
        voxels.put_many([(fresh, None), (clash, None)])
    assert voxels.count() == 2


def test_id_prefix_wildcards_match_nothing(voxels: VoxelStore, objects: LocalObjectStore) -> None:
    """``%`` and ``_`` are LIKE wildcards: as an id prefix they must match no voxel."""
    voxel = voxels.put(VoxelBuilder().build(classified_event(objects, b"w", name="w.txt"))).voxel
    assert voxels.get(voxel.id[:8]) == voxel
    for pattern in ("____", "%%%%", "____" + voxel.id[4:13], "%" + voxel.id[5:13], "0%%%", "a_b_"):
        with pytest.raises(VoxelNotFoundError, match="only hex digits"):
            voxels.get(pattern)
    with pytest.raises(VoxelNotFoundError):
        voxels.resolve_id("ab\\%cd")


def test_a_read_of_a_voxel_or_inline_row_that_is_gone_says_which(
    voxels: VoxelStore, objects: LocalObjectStore
) -> None:
    # the read's one driver-level query still tells a missing voxel from a missing inline row
    kept = voxels.put(VoxelBuilder().build(classified_event(objects, b"kept", name="k"))).voxel
    gone = voxels.put(VoxelBuilder().build(classified_event(objects, b"gone", name="g"))).voxel
    with _db(voxels) as conn:
        conn.execute("delete from search_docs where voxel_id = ?", (gone.id,))
        conn.execute("delete from voxels where id = ?", (gone.id,))
        conn.execute("delete from voxel_payloads where sha256 = ?", (kept.payload_sha256,))
    with pytest.raises(VoxelNotFoundError, match=gone.id):
        voxels.read_payload(gone)
    with pytest.raises(PayloadMissingError, match="inline payload"):
        voxels.read_payload(kept)


def test_a_database_error_on_a_read_is_a_backend_error_and_the_pool_recovers(
    voxels: VoxelStore, objects: LocalObjectStore
) -> None:
    voxel = voxels.put(VoxelBuilder().build(classified_event(objects, b"pooled"))).voxel
    with _db(voxels) as conn:
        conn.execute("alter table voxel_payloads rename to voxel_payloads_away")
    with pytest.raises(BackendError, match="voxel read failed"):
        voxels.read_payload(voxel)
    with _db(voxels) as conn:
        conn.execute("alter table voxel_payloads_away rename to voxel_payloads")
    assert voxels.read_payload(voxel) == b"pooled"
