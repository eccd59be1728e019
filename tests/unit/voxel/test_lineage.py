"""Lineage integrity: parents from the chain, acyclicity (deliberate cycles), recursive walks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, insert

from thunderline.config import Settings
from thunderline.objects.local import LocalObjectStore
from thunderline.voxel.builder import VoxelBuilder
from thunderline.voxel.errors import LineageCycleError, UnknownParentError
from thunderline.voxel.lineage import would_cycle
from thunderline.voxel.store import VoxelStore
from thunderline.voxel.tables import voxel_edges

from ._helpers import classified_event


def test_would_cycle_on_an_edge_list() -> None:
    parents = {"b": ["a"], "c": ["b"], "d": ["a"]}
    assert would_cycle(parents, "a", "a")
    assert would_cycle(parents, "a", "c")  # c -> b -> a: a would be its own ancestor
    assert not would_cycle(parents, "d", "c")
    assert not would_cycle(parents, "e", "c")


def test_builder_takes_lineage_from_the_chain(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    event = classified_event(store, b"hello", parent={"voxel_id": "p" * 36, "event_id": "pe"})
    voxel = VoxelBuilder().build(event)
    assert voxel.lineage.parent_voxel_ids == ("p" * 36,)
    # the classified event was caused by the ingest, which is also the chain's correlation id
    assert event.causationid == event.correlationid
    assert voxel.lineage.parent_event_ids == (event.id, event.correlationid, "pe")
    assert voxel.correlation_id == event.correlationid
    assert voxel.causation_id == event.causationid
    assert voxel.event_id == event.id


def test_builder_refuses_a_self_parent(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    vid = "01a21add-31fb-78da-bfcb-751a453ec641"
    event = classified_event(store, b"x", parent={"voxel_id": vid, "event_id": "e"})
    with pytest.raises(LineageCycleError):
        VoxelBuilder().build(event, voxel_id=vid)


def test_builder_refuses_a_parent_that_descends_from_it(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    me = "m" * 36
    graph = {"c" * 36: {me}}  # "me" is already an ancestor of the would-be parent
    builder = VoxelBuilder(lambda vid: graph.get(vid, set()))
    event = classified_event(store, b"x", parent={"voxel_id": "c" * 36, "event_id": "e"})
    with pytest.raises(LineageCycleError, match="cycle"):
        builder.build(event, voxel_id=me)


def test_builder_walks_no_lineage_for_an_id_it_mints(tmp_path: Path) -> None:
    """A new voxel's id is a fresh UUIDv7: nothing stored descends from it, so the builder
    does not look its parent's ancestors up (a query per archive member otherwise)."""
    store = LocalObjectStore(tmp_path / "objects")
    looked_up: list[str] = []
    builder = VoxelBuilder(lambda vid: looked_up.append(vid) or set())
    event = classified_event(store, b"x", parent={"voxel_id": "c" * 36, "event_id": "e"})
    voxel = builder.build(event)
    assert voxel.lineage.parent_voxel_ids == ("c" * 36,)
    assert looked_up == []
    builder.build(event, voxel_id="m" * 36)  # a given id is checked against the ancestors
    assert looked_up == ["c" * 36]


def _chain(voxels: VoxelStore, store: LocalObjectStore, n: int) -> list[str]:
    """n voxels, each the parent of the next."""
    builder = VoxelBuilder(voxels.ancestor_ids)
    ids: list[str] = []
    for i in range(n):
        parent = {"voxel_id": ids[-1], "event_id": "e"} if ids else None
        event = classified_event(store, f"v{i}".encode(), name=f"v{i}.txt", parent=parent)
        ids.append(voxels.put(builder.build(event)).voxel.id)
    return ids


def test_deliberate_cycle_in_the_database_is_refused(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    store = LocalObjectStore(tmp_path / "objects")
    with VoxelStore(settings, store) as voxels:
        a, b, c = _chain(voxels, store, 3)
        with pytest.raises(LineageCycleError):
            voxels.add_parents(a, [c])  # a -> c -> b -> a
        with pytest.raises(LineageCycleError):
            voxels.add_parents(b, [b])
        with pytest.raises(UnknownParentError):
            voxels.add_parents(a, ["0" * 36])
        # the refused edges left nothing behind
        assert voxels.parents(a) == []
        assert voxels.ancestor_ids(c) == {a, b}
        # a legal extra edge (a DAG, not a tree) is accepted
        d = _chain(voxels, store, 1)[0]
        voxels.add_parents(c, [d])
        assert voxels.ancestor_ids(c) == {a, b, d}


def test_ancestors_and_descendants_with_depths(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    with VoxelStore(make_settings(), store) as voxels:
        a, b, c, d = _chain(voxels, store, 4)
        up = voxels.ancestors(d)
        assert [(e.child_id, e.parent_id, e.depth) for e in up] == [(d, c, 1), (c, b, 2), (b, a, 3)]
        down = voxels.descendants(a)
        assert [(e.parent_id, e.child_id, e.depth) for e in down] == [
            (a, b, 1),
            (b, c, 2),
            (c, d, 3),
        ]
        assert voxels.ancestors(a) == [] and voxels.descendants(d) == []
        assert voxels.get(d).lineage.parent_voxel_ids == (c,)


def test_verify_checks_edge_rows_against_the_sealed_parents(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A deleted ``voxel_edges`` row and an added one are each reported by verify."""
    store = LocalObjectStore(tmp_path / "objects")
    with VoxelStore(make_settings(), store) as voxels:
        a, b, c = _chain(voxels, store, 3)
        d = _chain(voxels, store, 1)[0]
        assert all(r.ok for r in voxels.verify_all())
        with voxels.engine.begin() as conn:
            conn.execute(delete(voxel_edges).where(voxel_edges.c.child_id == c))
            conn.execute(insert(voxel_edges).values(child_id=a, parent_id=d))
        failed = {r.voxel_id: r for r in voxels.verify_all() if not r.ok}
    assert set(failed) == {a, c}
    assert failed[c].reason == "lineage_mismatch"
    assert f"lineage edge to sealed parent {b} is missing" in failed[c].detail
    assert failed[a].reason == "lineage_mismatch"
    assert f"lineage edge to {d} is not in the sealed parents" in failed[a].detail
