"""Duplicate policy, deletion with payload garbage collection, retention and the audit --
against the real pipeline, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from thunderline.classify.walk import iter_candidates
from thunderline.cli import app
from thunderline.config import Settings
from thunderline.outcomes import OutcomeStore
from thunderline.runtime import Runtime
from thunderline.sources.ledger import Ledger
from thunderline.sources.runner import sync_once
from thunderline.sources.scan import parse_source
from thunderline.voxel import lifecycle
from thunderline.voxel.errors import HasDescendantsError
from thunderline.voxel.store import VoxelStore

OLD = time.time() - 3600


def put(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    os.utime(path, (OLD, OLD))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Callable[..., Settings]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_schema_url")

    def factory(**overrides: Any) -> Settings:
        overrides.setdefault("enable_ml_pipeline", False)
        if url is not None:
            overrides.setdefault("database_url", url)
        return make_settings(**overrides)

    return factory


@pytest.mark.parametrize("policy", ["link", "flag", "reject", "reprocess"])
def test_duplicate_policy_in_sync(
    tmp_path: Path, make_settings: Callable[..., Settings], policy: str
) -> None:
    settings = make_settings(enable_ml_pipeline=False, duplicate_policy=policy)
    tree = tmp_path / "tree"
    put(tree / "a" / "one.txt", "the very same bytes\n")
    source = parse_source(str(tree))
    asyncio.run(sync_once(settings, source))
    put(tree / "b" / "copy.txt", "the very same bytes\n")
    report = asyncio.run(sync_once(settings, source))
    with Ledger(settings) as ledger:
        (first,) = ledger.entries(source.uri, key="a/one.txt")
        (copy,) = ledger.entries(source.uri, key="b/copy.txt")
    with VoxelStore(settings) as store:
        count = store.count()
    if policy == "link":
        assert report.linked == 1 and count == 1
        assert copy.outcome == "linked" and copy.voxel_id == first.voxel_id
        assert copy.duplicate_of == first.voxel_id
    elif policy == "flag":
        assert report.voxels == 1 and count == 2
        assert copy.outcome == "voxel" and copy.voxel_id != first.voxel_id
        assert copy.duplicate_of == first.voxel_id
    elif policy == "reject":
        assert report.dlq == 1 and count == 1
        assert copy.outcome == "dlq" and copy.voxel_id is None
        with OutcomeStore(settings) as outcomes:
            (record,) = [r for r in outcomes.dlq() if r.id == copy.dlq_id]
        assert record.reason == "duplicate"
    else:
        assert report.voxels == 1 and count == 2 and copy.duplicate_of is None
    with VoxelStore(settings) as store:
        groups = lifecycle.duplicate_groups(store)
    assert len(groups) == (0 if policy == "reject" else 1)


def test_duplicate_policy_applies_to_cli_ingest_too(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """The policy sits in the package stage: plain ``ingest`` (the Runtime) follows it."""
    settings = make_settings(enable_ml_pipeline=False, duplicate_policy="link")
    one = put(tmp_path / "x" / "one.txt", "shared content\n")
    two = put(tmp_path / "y" / "two.txt", "shared content\n")

    async def ingest(path: Path) -> None:
        async with Runtime(settings) as runtime:
            await runtime.submit_files(iter_candidates([path]))
            await runtime.wait_idle()

    asyncio.run(ingest(one))
    asyncio.run(ingest(two))
    with VoxelStore(settings) as store:
        assert store.count() == 1
    result = CliRunner().invoke(
        app, ["voxels", "duplicates", "--json"], env={"TL_HOME": str(settings.home)}
    )
    assert result.exit_code == 0, result.output
    assert '"linked_entries": []' in result.output  # CLI ingest has no ledger entry
    assert two.as_uri() in result.output  # ... but its outcome names the voxel it links to


def test_delete_and_gc_leave_verify_clean(
    tmp_path: Path, db_settings: Callable[..., Settings]
) -> None:
    settings = db_settings(duplicate_policy="reprocess", inline_payload_max_bytes=16)
    tree = tmp_path / "tree"
    put(tree / "keep.txt", "kept for good, a long enough payload\n")
    put(tree / "gone.txt", "deleted with its payload, a long enough payload\n")
    put(tree / "shared1.txt", "shared bytes between two voxels, long enough\n")
    put(tree / "shared2.txt", "shared bytes between two voxels, long enough\n")
    source = parse_source(str(tree))
    asyncio.run(sync_once(settings, source))
    with Ledger(settings) as ledger:
        by_key = {e.key: e for e in ledger.entries(source.uri)}
    with VoxelStore(settings) as store:
        gone = store.get(str(by_key["gone.txt"].voxel_id))
        shared1 = store.get(str(by_key["shared1.txt"].voxel_id))
        assert store.objects.exists(gone.payload_sha256)
        records = lifecycle.delete_voxels(
            store, [gone.id, shared1.id], actor="test", reason="unit of work"
        )
        assert {r.voxel_id: r.payload_removed for r in records} == {
            gone.id: True,
            shared1.id: False,  # shared2 still holds the bytes
        }
        assert not store.objects.exists(gone.payload_sha256)
        assert store.objects.exists(shared1.payload_sha256)
        assert store.count() == 2
        assert lifecycle.check_references(store) == []
        assert all(r.ok for r in store.verify_all())
        audit = lifecycle.deletions(store)
        assert {(a.voxel_id, a.actor, a.reason) for a in audit} == {
            (gone.id, "test", "unit of work"),
            (shared1.id, "test", "unit of work"),
        }
        shared2 = store.get(str(by_key["shared2.txt"].voxel_id))
        (last,) = lifecycle.delete_voxels(store, [shared2.id], actor="test", reason="last one")
        assert last.payload_removed and not store.objects.exists(shared2.payload_sha256)
        assert lifecycle.check_references(store) == []
    with Ledger(settings) as ledger:
        after = {e.key: e for e in ledger.entries(source.uri)}
    assert after["gone.txt"].voxel_id is None and after["gone.txt"].outcome == "deleted"
    result = CliRunner().invoke(
        app,
        ["voxels", "verify", "--all"],
        env={"TL_HOME": str(settings.home), "TL_DATABASE_URL": settings.resolved_database_url},
    )
    assert result.exit_code == 0, result.output


def test_an_orphan_is_reported_by_verify_all(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """The check can fail: an object put back after its last voxel was deleted is found."""
    settings = make_settings(enable_ml_pipeline=False)
    tree = tmp_path / "tree"
    put(tree / "a.txt", "bytes that come back as an orphan\n")
    source = parse_source(str(tree))
    asyncio.run(sync_once(settings, source))
    with VoxelStore(settings) as store:
        (voxel,) = store.query()
        lifecycle.delete_voxels(store, [voxel.id], actor="test", reason="orphan check")
        store.objects.put_bytes(b"bytes that come back as an orphan\n")
        problems = lifecycle.check_references(store)
    assert len(problems) == 1 and "outlived its last voxel" in problems[0]
    result = CliRunner().invoke(
        app, ["voxels", "verify", "--all"], env={"TL_HOME": str(settings.home)}
    )
    assert result.exit_code == 1


def test_archive_members_need_with_descendants(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    import zipfile

    settings = make_settings(enable_ml_pipeline=True)
    tree = tmp_path / "tree"
    tree.mkdir()
    with zipfile.ZipFile(tree / "bundle.zip", "w") as zf:
        zf.writestr("inner/a.txt", "member a of the archive, some text\n")
        zf.writestr("inner/b.txt", "member b of the archive, other text\n")
    os.utime(tree / "bundle.zip", (OLD, OLD))
    source = parse_source(str(tree))
    asyncio.run(sync_once(settings, source))
    with Ledger(settings) as ledger:
        (entry,) = ledger.entries(source.uri)
    with VoxelStore(settings) as store:
        assert store.count() == 3
        with pytest.raises(HasDescendantsError):
            lifecycle.delete_voxels(store, [str(entry.voxel_id)], actor="t", reason="r")
        from thunderline.voxel.store import text_sha256

        texts = {text_sha256(store.get(v)) for v in store.iter_ids()} - {None}
        assert texts  # the members' extracted text, stored beside their payloads
        records = lifecycle.delete_voxels(
            store, [str(entry.voxel_id)], actor="t", reason="r", with_descendants=True
        )
        assert len(records) == 3 and store.count() == 0
        assert not any(store.objects.exists(str(t)) for t in texts)  # collected too
        assert lifecycle.check_references(store) == []


def test_retention_and_source_delete_policy(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(enable_ml_pipeline=False, source_delete_policy="delete")
    tree = tmp_path / "tree"
    put(tree / "a.txt", "alpha alpha alpha\n")
    b = put(tree / "b.txt", "beta beta beta\n")
    source = parse_source(str(tree))
    asyncio.run(sync_once(settings, source))
    b.unlink()
    report = asyncio.run(sync_once(settings, source))
    assert report.deleted == 1
    with VoxelStore(settings) as store:
        assert store.count() == 1
        (audit,) = lifecycle.deletions(store)
        assert audit.actor == "sources" and "source_delete" in audit.reason
        assert lifecycle.check_references(store) == []
    env = {"TL_HOME": str(settings.home)}
    dry = CliRunner().invoke(
        app, ["voxels", "retain", "--source-prefix", tree.as_uri(), "--dry-run"], env=env
    )
    assert dry.exit_code == 0 and dry.stdout.count("\n") == 1
    done = CliRunner().invoke(
        app, ["voxels", "retain", "--source-prefix", tree.as_uri(), "--json"], env=env
    )
    assert done.exit_code == 0, done.output
    with VoxelStore(settings) as store:
        assert store.count() == 0 and lifecycle.check_references(store) == []
