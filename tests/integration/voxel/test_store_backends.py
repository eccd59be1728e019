"""The voxel store on SQLite and PostgreSQL: migrations, lineage CTEs, idempotent concurrent writes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.unit.voxel._helpers import classified_event

from thunderline.config import Settings
from thunderline.errors import ChecksumMismatch
from thunderline.objects.local import LocalObjectStore
from thunderline.voxel.builder import VoxelBuilder
from thunderline.voxel.doctor import doctor_report
from thunderline.voxel.errors import LineageCycleError
from thunderline.voxel.store import PutResult, VoxelStore

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Settings:
    if request.param == "sqlite":
        return make_settings(inline_payload_max_bytes=2048)
    url = request.getfixturevalue("pg_schema_url")
    return make_settings(database_url=url, inline_payload_max_bytes=2048)


def test_roundtrip_lineage_and_verification(backend: Settings, tmp_path: Path) -> None:
    objects = LocalObjectStore(backend.home / "objects")
    with VoxelStore(backend, objects) as voxels:
        assert voxels.engine.dialect.name in {"sqlite", "postgresql"}
        builder = VoxelBuilder(voxels.ancestor_ids)
        root = voxels.put(builder.build(classified_event(objects, b"root", name="r.zip"))).voxel
        kids = []
        for i in range(3):
            parent = {"voxel_id": root.id, "event_id": "e", "index": i}
            ev = classified_event(objects, f"kid {i}".encode() * 300, name=f"k{i}", parent=parent)
            kids.append(voxels.put(builder.build(ev)).voxel)
        grandchild_event = classified_event(
            objects, b"gc", name="gc", parent={"voxel_id": kids[0].id, "event_id": "e"}
        )
        grandchild = voxels.put(builder.build(grandchild_event)).voxel
        assert {e.child_id for e in voxels.descendants(root.id)} == {k.id for k in kids} | {
            grandchild.id
        }
        assert voxels.ancestor_ids(grandchild.id) == {kids[0].id, root.id}
        with pytest.raises(LineageCycleError):
            voxels.add_parents(root.id, [grandchild.id])
        assert voxels.get(grandchild.id) == grandchild
        assert voxels.read_payload(kids[1]) == b"kid 1" * 300  # 1500 B: inline
        assert all(r.ok for r in voxels.verify_all())
        assert voxels.count() == 5
        # payload tampered in the database is caught on every backend
        from sqlalchemy import update

        from thunderline.voxel.tables import voxel_payloads

        with voxels.engine.begin() as conn:
            conn.execute(
                update(voxel_payloads)
                .where(voxel_payloads.c.sha256 == kids[2].payload_sha256)
                .values(data=b"forged")
            )
        with pytest.raises(ChecksumMismatch):
            voxels.read_payload(kids[2].id)
    rows = doctor_report(backend)
    assert [status for _, status, _ in rows] == ["ok", "ok"], rows


def test_concurrent_threads_write_one_voxel(backend: Settings) -> None:
    objects = LocalObjectStore(backend.home / "objects")
    event = classified_event(objects, b"raced bytes", source="file:///race/a.txt")
    with VoxelStore(backend, objects) as voxels:
        barrier = threading.Barrier(8)
        results: list[PutResult | BaseException] = []
        lock = threading.Lock()

        def writer() -> None:
            voxel = VoxelBuilder().build(event)  # each writer its own id, as on two machines
            barrier.wait()
            try:
                result: PutResult | BaseException = voxels.put(voxel)
            except BaseException as exc:
                result = exc
            with lock:
                results.append(result)

        threads = [threading.Thread(target=writer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not [r for r in results if isinstance(r, BaseException)], results
        puts = [r for r in results if isinstance(r, PutResult)]
        assert len(puts) == 8
        assert sum(r.created for r in puts) == 1
        assert len({r.voxel.id for r in puts}) == 1
        assert voxels.count() == 1


WRITER = textwrap.dedent(
    """
    import json, sys
    from thunderline.config import load_settings
    from thunderline.events import CloudEvent
    from thunderline.voxel.builder import VoxelBuilder
    from thunderline.voxel.store import VoxelStore

    settings = load_settings()
    event = CloudEvent.from_json(open(sys.argv[1]).read())
    voxels = VoxelStore(settings)  # first use: migrates, racing the other processes
    result = voxels.put(VoxelBuilder().build(event))
    print(json.dumps({"id": result.voxel.id, "created": result.created}))
    """
)


def test_concurrent_processes_migrate_and_write_one_voxel(
    backend: Settings, tmp_path: Path
) -> None:
    objects = LocalObjectStore(backend.home / "objects")
    event = classified_event(objects, b"bytes raced by processes", source="file:///race/p.txt")
    event_file = tmp_path / "event.json"
    event_file.write_text(event.to_json())
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {
        "TL_HOME": str(backend.home),
        "TL_DATABASE_URL": backend.resolved_database_url,
        "TL_INLINE_PAYLOAD_MAX_BYTES": "2048",
        "PATH": "/usr/bin:/bin",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(event_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        for _ in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        outputs.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert sum(o["created"] for o in outputs) == 1
    assert len({o["id"] for o in outputs}) == 1
    with VoxelStore(backend, objects) as voxels:
        assert voxels.count() == 1


def test_bulk_batch_is_idempotent_within_and_across_batches(backend: Settings) -> None:
    objects = LocalObjectStore(backend.home / "objects")
    builder = VoxelBuilder()
    events = [classified_event(objects, f"bulk {i}".encode() * 50, name=f"b{i}") for i in range(6)]
    items = [(builder.build(e), None) for e in events]
    twin = builder.build(events[2])  # same source and bytes, another voxel id
    with VoxelStore(backend, objects) as voxels:
        first = voxels.put_many([*items, (twin, None), items[0]])
        assert [r.created for r in first] == [True] * 6 + [False, False]
        assert first[6].voxel == items[2][0] and first[7].voxel == items[0][0]
        assert voxels.count() == 6
        again = voxels.put_many(items)
        assert not any(r.created for r in again)
        assert [r.voxel for r in again] == [v for v, _ in items]
        late_twin = voxels.put_many([(builder.build(events[4]), None)])[0]
        assert not late_twin.created and late_twin.voxel == items[4][0]
        assert voxels.count() == 6 and all(r.ok for r in voxels.verify_all())


def test_bulk_batch_mixing_stored_and_new_voxels_reports_each(backend: Settings) -> None:
    """A batch re-sending stored voxels (same ids) beside new ones: only the new are created.

    The row count of the insert cannot tell which rows went in when rows with the same id and
    key were there before; the store then writes the batch again reading the stored keys first.
    """
    objects = LocalObjectStore(backend.home / "objects")
    builder = VoxelBuilder()
    items = [
        (builder.build(classified_event(objects, f"mix {i}".encode() * 40, name=f"x{i}")), None)
        for i in range(5)
    ]
    with VoxelStore(backend, objects) as voxels:
        assert all(r.created for r in voxels.put_many([items[1], items[3]]))
        mixed = voxels.put_many(items)
        assert [r.created for r in mixed] == [True, False, True, False, True]
        assert [r.voxel for r in mixed] == [v for v, _ in items]
        assert voxels.count() == 5
        assert not any(r.created for r in voxels.put_many(items))
        assert all(r.ok for r in voxels.verify_all())
        assert [voxels.read_payload(v) for v, _ in items] == [
            f"mix {i}".encode() * 40 for i in range(5)
        ]


def test_bulk_lineage_inside_one_batch(backend: Settings) -> None:
    objects = LocalObjectStore(backend.home / "objects")
    builder = VoxelBuilder()
    root = builder.build(classified_event(objects, b"archive", name="a.zip"))
    kids = [
        builder.build(
            classified_event(
                objects,
                f"member {i}".encode(),
                name=f"m{i}",
                parent={"voxel_id": root.id, "event_id": "e", "index": i},
            )
        )
        for i in range(3)
    ]
    grandchild = builder.build(
        classified_event(
            objects, b"inner", name="g", parent={"voxel_id": kids[1].id, "event_id": "e"}
        )
    )
    with VoxelStore(backend, objects) as voxels:
        results = voxels.put_many([(grandchild, None), *[(k, None) for k in kids], (root, None)])
        assert all(r.created for r in results)
        assert voxels.ancestor_ids(grandchild.id) == {kids[1].id, root.id}
        assert {e.child_id for e in voxels.descendants(root.id)} == {
            *(k.id for k in kids),
            grandchild.id,
        }
        voxels.put_many([(k, None) for k in kids])  # rewrites add no edge twice
        assert len(voxels.descendants(root.id)) == 4


def test_bulk_refuses_a_cycle_or_unknown_parent_and_writes_nothing(backend: Settings) -> None:
    from thunderline.voxel.errors import UnknownParentError

    objects = LocalObjectStore(backend.home / "objects")
    builder = VoxelBuilder()
    a_id, b_id = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
    a = builder.build(
        classified_event(objects, b"a", name="a", parent={"voxel_id": b_id, "event_id": "e"}),
        voxel_id=a_id,
    )
    b = builder.build(
        classified_event(objects, b"b", name="b", parent={"voxel_id": a_id, "event_id": "e"}),
        voxel_id=b_id,
    )
    orphan = builder.build(
        classified_event(
            objects,
            b"o",
            name="o",
            parent={"voxel_id": "00000000-0000-4000-8000-0000000000ff", "event_id": "e"},
        )
    )
    fine = builder.build(classified_event(objects, b"fine", name="fine"))
    with VoxelStore(backend, objects) as voxels:
        with pytest.raises(LineageCycleError):
            voxels.put_many([(fine, None), (a, None), (b, None)])
        with pytest.raises(UnknownParentError, match="do not exist"):
            voxels.put_many([(fine, None), (orphan, None)])
        assert voxels.count() == 0  # all or none
        assert voxels.put_many([(fine, None)])[0].created
