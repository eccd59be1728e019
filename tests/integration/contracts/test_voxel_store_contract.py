"""The voxel store contract, run over every database (``VOXEL_BACKENDS``): idempotent writes,
reads equal to what was written, lineage, lookups, verified payloads, typed errors."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from thunderline.config import Settings
from thunderline.errors import ChecksumMismatch
from thunderline.eventdata import Parent
from thunderline.events import CloudEvent
from thunderline.objects.local import LocalObjectStore
from thunderline.stores import VoxelStorage
from thunderline.testing import classified
from thunderline.voxel.builder import VoxelBuilder
from thunderline.voxel.errors import LineageCycleError, PayloadMissingError, VoxelNotFoundError
from thunderline.voxel.paging import BadCursorError, VoxelFilter
from thunderline.voxel.schema import Voxel
from thunderline.voxel.store import VoxelStore


@pytest.fixture
def objects(voxel_settings: Settings) -> LocalObjectStore:
    return LocalObjectStore(voxel_settings.home / "objects")


@pytest.fixture
def voxels(voxel_settings: Settings, objects: LocalObjectStore) -> Iterator[VoxelStorage]:
    with VoxelStore(voxel_settings, objects) as store:
        assert isinstance(store, VoxelStorage)
        yield store


def _event(objects: LocalObjectStore, payload: bytes, **kw: Any) -> CloudEvent:
    return classified(objects, payload, "txt", **kw)


def _put(voxels: VoxelStorage, event: CloudEvent) -> Voxel:
    return voxels.put(VoxelBuilder(voxels.ancestor_ids).build(event)).voxel


def test_a_voxel_reads_back_equal_and_is_found_every_way(
    voxels: VoxelStorage, objects: LocalObjectStore
) -> None:
    event = _event(objects, b"small and inline", source="file:///c/a.txt")
    voxel = _put(voxels, event)
    assert voxels.get(voxel.id) == voxel
    assert voxels.find_by_event(event.id) == voxel
    assert voxels.find("file:///c/a.txt", voxel.payload_sha256) == voxel
    assert voxels.resolve_id(voxel.id[:12]) == voxel.id
    assert voxels.count() == 1 and list(voxels.iter_ids()) == [voxel.id]
    assert [v.id for v in voxels.query(label="txt")] == [voxel.id]


def test_writes_are_idempotent(voxels: VoxelStorage, objects: LocalObjectStore) -> None:
    event = _event(objects, b"twice")
    builder = VoxelBuilder(voxels.ancestor_ids)
    first = voxels.put(builder.build(event))
    again = voxels.put(builder.build(event))  # redelivered: a new id, the same voxel
    assert first.created and not again.created
    assert again.voxel == first.voxel
    many = voxels.put_many([(builder.build(event), None), (builder.build(event), None)])
    assert [r.created for r in many] == [False, False]
    assert voxels.count() == 1


@pytest.mark.parametrize("size", [100, 5000], ids=["inline", "object-store"])
def test_payloads_read_back_verified(
    voxels: VoxelStorage, objects: LocalObjectStore, size: int
) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    voxel = _put(voxels, _event(objects, payload))
    assert voxels.read_payload(voxel) == payload
    out = io.BytesIO()
    assert voxels.copy_payload(voxel.id, out) == len(payload)
    assert out.getvalue() == payload
    assert voxels.verify(voxel.id).ok


def test_a_payload_gone_from_the_object_store_is_reported(
    voxels: VoxelStorage, objects: LocalObjectStore
) -> None:
    voxel = _put(voxels, _event(objects, b"big " * 2000))
    path = objects.local_path(voxel.payload_sha256)
    assert path is not None
    path.unlink()
    with pytest.raises(PayloadMissingError):
        voxels.read_payload(voxel)
    result = voxels.verify(voxel.id)
    assert not result.ok and result.reason == "payload_missing"


def test_a_corrupt_payload_is_never_served(voxels: VoxelStorage, objects: LocalObjectStore) -> None:
    voxel = _put(voxels, _event(objects, b"genuine " * 1000))
    path = objects.local_path(voxel.payload_sha256)
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(b"forged! " * 1000)
    with pytest.raises(ChecksumMismatch):
        voxels.read_payload(voxel)
    assert voxels.verify(voxel.id).reason == "checksum_mismatch"


def test_lineage_is_a_dag(voxels: VoxelStorage, objects: LocalObjectStore) -> None:
    root = _put(voxels, _event(objects, b"root"))
    child = _put(
        voxels,
        _event(objects, b"child", parent=Parent(voxel_id=root.id, event_id="e", index=0)),
    )
    grandchild = _put(
        voxels,
        _event(objects, b"grandchild", parent=Parent(voxel_id=child.id, event_id="e", index=0)),
    )
    assert voxels.parents(grandchild.id) == [child.id]
    assert voxels.ancestor_ids(grandchild.id) == {child.id, root.id}
    assert {e.child_id for e in voxels.descendants(root.id)} == {child.id, grandchild.id}
    with pytest.raises(LineageCycleError):
        voxels.add_parents(root.id, [grandchild.id])


def test_an_unknown_voxel_is_voxel_not_found(voxels: VoxelStorage) -> None:
    with pytest.raises(VoxelNotFoundError):
        voxels.get("00000000-0000-7000-8000-000000000000")
    with pytest.raises(VoxelNotFoundError):
        voxels.resolve_id("ffffffff")


def test_pages_go_newest_first_without_repeats_or_gaps(
    voxels: VoxelStorage, objects: LocalObjectStore
) -> None:
    made = [_put(voxels, _event(objects, f"page item {i}".encode())) for i in range(5)]
    newest_first = [v.id for v in sorted(made, key=lambda v: (v.ts.timestamp(), v.id))][::-1]
    seen: list[str] = []
    cursor: str | None = None
    for expected_size in (2, 2, 1):
        items, cursor = voxels.page(VoxelFilter(label="txt"), cursor, limit=2)
        assert len(items) == expected_size
        seen += [v.id for v in items]
        if expected_size == 2:
            assert cursor is not None
    assert cursor is None and seen == newest_first
    assert voxels.page(VoxelFilter(label="pdf")) == ([], None)
    with pytest.raises(BadCursorError):
        voxels.page(VoxelFilter(), "not-a-cursor")
    voxels.ping()
