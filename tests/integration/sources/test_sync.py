"""Sync and watch against real parts: the in-process pipeline, SQLite/PostgreSQL, the local
object store and the SeaweedFS S3 server; a killed ``thunderline sync`` process resumes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import func, select

from thunderline.config import Settings
from thunderline.outcomes import OutcomeStore
from thunderline.sources.ledger import Ledger
from thunderline.sources.runner import sync_once, watch
from thunderline.sources.scan import parse_source
from thunderline.voxel.db import make_engine
from thunderline.voxel.tables import outcomes, source_entries, voxels

OLD = time.time() - 3600  # an mtime long settled
UNCHANGED_FILES = 10_000  # the unchanged tree: the first sync ingests each file for real


def write_tree(root: Path, n: int, *, prefix: str = "doc") -> list[Path]:
    paths = []
    for i in range(n):
        path = root / f"d{i % 7}" / f"{prefix}{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{prefix} number {i}: a small text file for the sync tests\n")
        os.utime(path, (OLD, OLD))
        paths.append(path)
    return paths


def counts(settings: Settings) -> dict[str, int]:
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            return {
                "voxels": conn.execute(select(func.count()).select_from(voxels)).scalar_one(),
                "outcomes": conn.execute(select(func.count()).select_from(outcomes)).scalar_one(),
                "versions": conn.execute(
                    select(func.count()).select_from(source_entries)
                ).scalar_one(),
            }
    finally:
        engine.dispose()


@pytest.fixture
def fast(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        overrides.setdefault("enable_ml_pipeline", False)  # admission + package: fast
        overrides.setdefault("source_settle_s", 1.0)
        return make_settings(**overrides)

    return factory


@pytest.mark.slow
def test_second_sync_of_an_unchanged_10k_tree_does_no_ingest_work(
    tmp_path: Path, fast: Callable[..., Settings]
) -> None:
    settings = fast()
    tree = tmp_path / "tree"
    write_tree(tree, UNCHANGED_FILES)
    source = parse_source(str(tree))
    first = asyncio.run(sync_once(settings, source))
    assert (first.new, first.voxels, first.dlq) == (UNCHANGED_FILES, UNCHANGED_FILES, 0)
    before = counts(settings)
    assert before["voxels"] == UNCHANGED_FILES and before["versions"] == UNCHANGED_FILES
    objects_before = sorted(p.name for p in (settings.home / "objects").rglob("*") if p.is_file())

    second = asyncio.run(sync_once(settings, source))
    assert second.seen == UNCHANGED_FILES and second.unchanged == UNCHANGED_FILES
    assert second.submitted == 0 and second.new == second.changed == second.touched == 0
    assert counts(settings) == before  # no voxel, no outcome, no ledger version written
    objects_after = sorted(p.name for p in (settings.home / "objects").rglob("*") if p.is_file())
    assert objects_after == objects_before  # nothing was read into the store either
    # nothing to send: no pipeline is started (a broker that is not there is never dialled)
    offline = settings.model_copy(update={"bus_url": "amqp://guest:guest@127.0.0.1:9/"})
    third = asyncio.run(sync_once(offline, source))
    assert third.unchanged == UNCHANGED_FILES and third.submitted == 0


def test_change_touch_delete_and_return(tmp_path: Path, fast: Callable[..., Settings]) -> None:
    settings = fast()
    tree = tmp_path / "tree"
    a, b, c, _d = write_tree(tree, 4)
    source = parse_source(str(tree))
    asyncio.run(sync_once(settings, source))

    a.write_text("new content of a\n")
    os.utime(a, (OLD + 10, OLD + 10))
    os.utime(b, (OLD + 20, OLD + 20))  # same bytes, new mtime: no new version
    c.unlink()
    report = asyncio.run(sync_once(settings, source))
    assert (report.changed, report.touched, report.deleted, report.unchanged) == (1, 1, 1, 1)
    assert report.voxels == 1

    with Ledger(settings) as ledger:
        versions = ledger.entries(
            source.uri, key=a.relative_to(tree).as_posix(), current_only=False
        )
        assert [v.version for v in versions] == [1, 2]
        assert versions[1].previous_id == versions[0].id and versions[1].current
        assert not versions[0].current
        assert versions[1].content_sha256 == hashlib.sha256(a.read_bytes()).hexdigest()
        assert versions[0].voxel_id != versions[1].voxel_id  # both results kept
        (gone,) = ledger.entries(source.uri, key=c.relative_to(tree).as_posix())
        assert gone.state == "deleted" and gone.voxel_id is not None  # policy keep

    c.write_text("c is back, different\n")
    os.utime(c, (OLD, OLD))
    report = asyncio.run(sync_once(settings, source))
    assert report.changed == 1 and report.voxels == 1
    with Ledger(settings) as ledger:
        back = ledger.entries(source.uri, key=c.relative_to(tree).as_posix(), current_only=False)
        assert [(e.version, e.state) for e in back] == [(1, "deleted"), (2, "done")]


def test_a_file_still_being_written_waits_to_settle(
    tmp_path: Path, fast: Callable[..., Settings]
) -> None:
    settings = fast(source_settle_s=30.0)
    tree = tmp_path / "tree"
    write_tree(tree, 2)
    (tree / "fresh.txt").write_text("just written\n")
    report = asyncio.run(sync_once(settings, parse_source(str(tree))))
    assert report.settling == 1 and report.new == 2


def test_a_slow_writer_is_taken_once_after_it_stops(
    tmp_path: Path, fast: Callable[..., Settings]
) -> None:
    """A file appended to every second for 10 s: one version, with every line."""
    settings = fast(source_settle_s=2.0, source_poll_interval_s=0.5)
    tree = tmp_path / "tree"
    tree.mkdir()
    slow = tree / "slow.log"
    source = parse_source(str(tree))
    passes: list[Any] = []
    stopped_at: list[float] = []

    def writer() -> None:
        with open(slow, "w") as out:
            for i in range(11):
                out.write(f"line {i} of a slow writer\n")
                out.flush()
                time.sleep(1.0)
        stopped_at.append(time.time())

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(watch(settings, source, stop=stop, on_pass=passes.append))
        thread = threading.Thread(target=writer)
        thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if not thread.is_alive() and any(p.voxels for p in passes):
                break
        thread.join()
        await asyncio.sleep(3.0)  # more passes after it was taken: nothing new
        stop.set()
        await asyncio.wait_for(task, 60)

    asyncio.run(main())
    with Ledger(settings) as ledger:
        entries = ledger.entries(source.uri, current_only=False)
    assert len(entries) == 1, entries
    (entry,) = entries
    assert entry.state == "done" and entry.outcome == "voxel" and entry.version == 1
    assert entry.content_sha256 == hashlib.sha256(slow.read_bytes()).hexdigest()
    assert entry.seen_unix >= stopped_at[0]  # taken after the writer stopped
    assert sum(p.settling for p in passes) >= 1  # it was seen while still changing
    assert counts(settings)["voxels"] == 1


def test_a_killed_sync_resumes_with_nothing_taken_twice_or_missed(
    tmp_path: Path, fast: Callable[..., Settings]
) -> None:
    settings = fast(source_batch_size=5)
    tree = tmp_path / "tree"
    files = write_tree(tree, 400)
    env = {
        **os.environ,
        "TL_HOME": str(settings.home),
        "TL_ENABLE_ML_PIPELINE": "false",
        "TL_SOURCE_BATCH_SIZE": "5",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    with open(tmp_path / "sync.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "thunderline.cli", "sync", str(tree)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    db = settings.home / "thunderline.db"
    deadline = time.monotonic() + 120
    done_at_kill = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                done_at_kill = counts(settings)["versions"]
            except Exception:
                done_at_kill = 0
            if done_at_kill >= 20:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert 0 < done_at_kill < len(files), f"killed at {done_at_kill}: not mid-sync"

    report = asyncio.run(sync_once(settings, parse_source(str(tree))))
    assert report.dlq == 0
    with Ledger(settings) as ledger:
        entries = ledger.entries(parse_source(str(tree)).uri, current_only=False, limit=10_000)
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys)) == len(files)  # one version each: none taken twice
    assert {e.state for e in entries} == {"done"} and all(e.voxel_id for e in entries)
    final = counts(settings)
    assert final["voxels"] == len(files)  # none missed
    with OutcomeStore(settings) as store:
        per_artifact: dict[str, int] = {}
        for record in store.by_correlations([str(e.correlation_id) for e in entries]):
            per_artifact[str(record.artifact)] = per_artifact.get(str(record.artifact), 0) + 1
    assert len(per_artifact) == len(files) and set(per_artifact.values()) == {1}
    again = asyncio.run(sync_once(settings, parse_source(str(tree))))
    assert again.unchanged == len(files) and again.submitted == 0


def test_an_s3_prefix_syncs_incrementally(
    make_settings: Callable[..., Settings], s3_url: str, s3_endpoint: str
) -> None:
    settings = make_settings(
        enable_ml_pipeline=False,
        s3_endpoint_url=s3_endpoint,
        object_store_url=s3_url,  # the payload store is a bucket too
    )
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        config=boto3.session.Config(s3={"addressing_style": "path"}),
    )
    bucket = f"{s3_url.removeprefix('s3://')}-src"
    client.create_bucket(Bucket=bucket)
    for i in range(12):
        client.put_object(Bucket=bucket, Key=f"inbox/2026/f{i}.txt", Body=f"object {i}\n".encode())
    client.put_object(Bucket=bucket, Key="elsewhere/x.txt", Body=b"not in the prefix\n")
    source = parse_source(f"s3://{bucket}/inbox")
    first = asyncio.run(sync_once(settings, source))
    assert (first.seen, first.new, first.voxels, first.dlq) == (12, 12, 12, 0)

    client.put_object(Bucket=bucket, Key="inbox/2026/f3.txt", Body=b"object 3, edited\n")
    client.put_object(Bucket=bucket, Key="inbox/new.txt", Body=b"a new object\n")
    client.delete_object(Bucket=bucket, Key="inbox/2026/f5.txt")
    second = asyncio.run(sync_once(settings, source))
    assert (second.new, second.changed, second.deleted, second.unchanged) == (1, 1, 1, 10)
    assert second.voxels == 2
    third = asyncio.run(sync_once(settings, source))
    assert third.unchanged == 12 and third.submitted == 0
    with Ledger(settings) as ledger:
        (edited,) = ledger.entries(source.uri, key="2026/f3.txt")
    assert edited.version == 2
    engine = make_engine(settings.resolved_database_url)
    with engine.connect() as conn:
        sources = set(conn.scalars(select(voxels.c.source)))
    engine.dispose()
    assert f"s3://{bucket}/inbox/2026/f3.txt" in sources
    assert not any("elsewhere" in s for s in sources)


class _Crash(Exception):
    """The injected fault: the process 'dies' right after publishing."""


def test_entries_left_submitted_by_a_crash_are_settled_or_resent(
    tmp_path: Path, fast: Callable[..., Settings]
) -> None:
    """A pass dies after publishing 7 of a batch's events (before settling any): the next
    pass settles those whose outcome is committed and sends the others again."""
    from thunderline.objects.factory import open_object_store
    from thunderline.runtime import Runtime
    from thunderline.sources.sync import IngestorPublisher, SourceSync

    settings = fast(source_batch_size=10)
    tree = tmp_path / "tree"
    files = write_tree(tree, 10)
    source = parse_source(str(tree))

    class CrashingPublisher(IngestorPublisher):
        sent = 0

        async def publish(self, event: Any) -> None:
            if self.sent == 7:
                await self.ingestor.wait_idle()  # the 7 sent ones reach their outcome
                raise _Crash()
            self.sent += 1
            await super().publish(event)

    async def crashing_pass() -> None:
        ledger = Ledger(settings)
        try:
            async with Runtime(settings) as runtime:
                sync = SourceSync(
                    settings,
                    source,
                    ledger,
                    CrashingPublisher(runtime),
                    open_object_store(settings),
                )
                with pytest.raises(_Crash):
                    await sync.run_pass()
        finally:
            ledger.close()

    asyncio.run(crashing_pass())
    with Ledger(settings) as ledger:
        states = [e.state for e in ledger.entries(source.uri)]
    assert states.count("submitted") == 10  # committed before publishing, none settled
    assert counts(settings)["voxels"] == 7

    report = asyncio.run(sync_once(settings, source))
    assert report.resumed == 10 and report.submitted == 3  # 7 settled from their outcomes
    with Ledger(settings) as ledger:
        entries = ledger.entries(source.uri, current_only=False)
    assert len(entries) == len(files) and {e.state for e in entries} == {"done"}
    assert counts(settings)["voxels"] == len(files)
    with OutcomeStore(settings) as store:
        records = store.by_correlations([str(e.correlation_id) for e in entries])
    assert len(records) == len(files)  # one outcome per file: nothing processed twice


@pytest.fixture(params=["sqlite", "postgresql"])
def on_db(request: pytest.FixtureRequest, fast: Callable[..., Settings]) -> Callable[..., Settings]:
    url = request.getfixturevalue("pg_schema_url") if request.param == "postgresql" else None

    def factory(**overrides: Any) -> Settings:
        if url is not None:
            overrides.setdefault("database_url", url)
        return fast(**overrides)

    return factory


def test_every_ledger_write_of_compared_fields_moves_the_root_count(
    tmp_path: Path, on_db: Callable[..., Settings]
) -> None:
    """A copy is read again after each write a pass compares; not after pass records/pauses."""
    root, other = "file:///srv/a", "file:///srv/b"
    seen = type("Seen", (), {"size": 9, "mtime_ns": 9, "etag": None})()
    with Ledger(on_db()) as ledger:
        copy = ledger.snapshot(root)
        theirs = ledger.snapshot(other)
        assert copy.live == 0 and ledger.snapshot(root, copy) is copy

        def moved() -> bool:
            nonlocal copy
            fresh = ledger.snapshot(root, copy)
            changed, copy = fresh is not copy, fresh
            return changed

        row = {"root": root, "key": "k.txt", "version": 1, "size": 1, "mtime_ns": 1}
        (entry_id,) = ledger.add_versions([{**row, "content_sha256": "a" * 64}])
        assert moved() and copy.folders[""]["k.txt"][4] == "submitted" and copy.live == 1
        ledger.resend(entry_id, "corr-2", seen, "b" * 64)
        assert moved() and copy.folders[""]["k.txt"][1] == 9
        ledger.settle([{"id": entry_id, "outcome": "voxel"}])
        assert moved() and copy.folders[""]["k.txt"][4] == "done"
        ledger.touch([(entry_id, 10, 10, None)])
        assert moved() and copy.folders[""]["k.txt"][2] == 10
        ledger.finish_pass(root, {"seen": 1})
        ledger.set_paused(root, True)
        assert not moved()
        ledger.mark_deleted([entry_id])
        assert moved() and copy.live == 0
        ledger.add_versions([{**row, "version": 2, "previous_id": entry_id}])
        assert moved() and copy.folders[""]["k.txt"][0] != entry_id and copy.live == 1
        assert ledger.snapshot(other, theirs) is theirs  # another root's writes: not its count


def test_a_watch_pass_reads_the_ledger_again_only_after_a_write(
    tmp_path: Path, on_db: Callable[..., Settings]
) -> None:
    """A kept ledger copy is reused while nothing is written, and read again after another
    process took a change, a touch or a deletion (it would take them a second time if not)."""
    from thunderline.sources.runner import open_sync

    settings = on_db()
    tree = tmp_path / "tree"
    edited, touched, removed, *_ = write_tree(tree, 6)
    source = parse_source(str(tree))

    async def main() -> None:
        async with open_sync(settings, source) as mine:
            assert (await mine.run_pass()).new == 6
            reads = mine.snapshot_reads
            for _ in range(2):  # the first pass's own writes are read once, then nothing
                idle = await mine.run_pass()
                assert (idle.unchanged, idle.submitted) == (6, 0)
            assert mine.snapshot_reads == reads + 1

            edited.write_text("edited by hand\n")
            os.utime(edited, (OLD + 5, OLD + 5))
            os.utime(touched, (OLD + 6, OLD + 6))
            removed.unlink()
            theirs = await sync_once(settings, source)  # another process: its own ledger
            assert (theirs.changed, theirs.touched, theirs.deleted) == (1, 1, 1)

            after = await mine.run_pass()
            assert (after.seen, after.unchanged) == (5, 5), after
            assert after.changed == after.touched == after.deleted == after.submitted == 0
            assert mine.snapshot_reads == reads + 2

    asyncio.run(main())
    with Ledger(settings) as ledger:
        versions = ledger.entries(source.uri, current_only=False)
    assert len(versions) == 7  # six first versions and the edit's second
