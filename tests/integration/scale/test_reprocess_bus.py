"""``thunderline reprocess`` over RabbitMQ workers (real RabbitMQ, PostgreSQL and S3): the run's
items are published to the stage's queue, two stateless workers run the stage and their collector
records the versions; a stopped run resumed publishes its pending items again and still records
one new version per voxel, none twice; a voxel whose payload is gone fails as a DLQ record."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import func, select
from tests.integration.scale.conftest import Cluster

from thunderline.outcomes import OutcomeStore
from thunderline.sources.reprocess import Reprocessor, ReprocessRuns, item_correlation
from thunderline.voxel.store import VoxelStore
from thunderline.voxel.tables import voxel_results

ML = {"TL_ENABLE_ML_PIPELINE": "true", "TL_SPACY_WORKERS": "1"}


def test_reprocess_over_two_workers_records_one_version_per_voxel(cluster: Cluster) -> None:
    files = cluster.make_files(24, prefix="rp")
    # ingested in-process into the cluster's shared database and bucket (extract, nlp, package)
    cluster.cli("ingest", str(files[0].parent), env={**ML, "TL_BUS_URL": "memory://"})
    assert cluster.voxel_count() == 24
    settings = cluster.settings(enable_ml_pipeline=True)

    # no worker serves extract yet: the run publishes its items, waits, and gives up
    first = cluster.cli(
        "reprocess", "--stage", "extract", "--json",
        env={**ML, "TL_BUS_UNSERVED_TIMEOUT_S": "3"}, check=False,
    )  # fmt: skip
    assert first.returncode == 1 and "unserved" in first.stderr, first.stderr
    with ReprocessRuns(settings) as runs:
        (stopped,) = runs.runs()
        assert stopped.state == "running" and stopped.counts == {"pending": 24}
    run_id = stopped.id

    # one voxel's payload vanishes from the bucket: its extract fails for good
    with VoxelStore(settings) as store:
        victim = sorted(store.iter_ids())[5]
        store.objects.delete(store.get(victim).payload_sha256)

    # resumed while still no worker serves it: every pending item is published a second time
    again = cluster.cli(
        "reprocess", "--resume", run_id, "--json",
        env={**ML, "TL_BUS_UNSERVED_TIMEOUT_S": "3"}, check=False,
    )  # fmt: skip
    assert again.returncode == 1 and "unserved" in again.stderr, again.stderr

    # 48 messages for 24 items; two workers take them
    workers = [cluster.worker("extract,collect", env=ML) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    with ReprocessRuns(settings) as runs:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            left = runs.get(run_id)
            assert left is not None
            if not left.counts.get("pending"):
                break
            time.sleep(0.2)

    def extract_dlq() -> list[Any]:
        with OutcomeStore(settings) as outcomes:
            return [r for r in outcomes.dlq(limit=100) if r.event.data.get("stage") == "extract"]

    def failed() -> list[int]:
        return [w.text().count("dead-lettered in extract: not_found") for w in workers]

    def completed() -> list[int]:
        return [w.text().count("outcome system.extract.completed recorded") for w in workers]

    # the second copies, still queued after their items were done: 46 results, 2 failures
    while time.monotonic() < deadline and (sum(completed()) < 46 or sum(failed()) < 2):
        time.sleep(0.2)
    resumed = cluster.cli("reprocess", "--resume", run_id, "--json", env=ML, check=False)
    assert resumed.returncode == 1, resumed.stderr  # one item failed
    info = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert info["state"] == "done" and info["counts"] == {"done": 23, "failed": 1}, info

    with VoxelStore(settings) as store:
        worker = Reprocessor(settings, store)
        failures = worker.runs.items(run_id, state="failed")
        assert [i["voxel_id"] for i in failures] == [victim]
        assert "dlq" in failures[0]["detail"]
        for voxel_id in store.iter_ids():
            versions = worker.versions(voxel_id)["extract"]
            if voxel_id == victim:
                assert [(v.seq, v.run_id) for v in versions] == [(1, None)]
                continue
            assert [(v.seq, v.run_id, v.current) for v in versions] == [
                (1, None, False),
                (2, run_id, True),
            ]
            assert versions[1].result["text_ref"] == versions[0].result["text_ref"]
        with store.engine.connect() as conn:
            made = conn.scalar(
                select(func.count())
                .select_from(voxel_results)
                .where(voxel_results.c.run_id == run_id)
            )
        assert made == 23  # 48 messages, one version per voxel

    # the failure is a DLQ record of the extract stage, caused by the reprocess event
    records = extract_dlq()
    assert len(records) == 1, records  # one record per run and item, however many copies failed
    assert records[0].correlation_id == item_correlation(run_id, victim)
    original = records[0].event.data["original"]["data"]
    assert original["reprocess"] == {
        "run_id": run_id,
        "voxel_id": victim,
        "stage": "extract",
    }
    # both workers took part: 48 messages, the victim's two failed, the rest each recorded once
    # by one of the two collectors
    assert sum(completed()) == 46 and sum(failed()) == 2, (completed(), failed())

    # nothing is lost: with its payload back, the DLQ record replayed to the workers makes the
    # victim's version, marks its item done and resolves the record
    with VoxelStore(settings) as store:
        name = store.get(victim).traits["artifact"]["name"]
        store.objects.put_bytes((files[0].parent / name).read_bytes())
    cluster.cli("dlq", "replay", records[0].id, "--all", env=ML)
    with ReprocessRuns(settings) as runs:
        while time.monotonic() < deadline + 120:
            after = runs.get(run_id)
            assert after is not None
            if after.counts == {"done": 24}:
                break
            time.sleep(0.2)
        assert after.counts == {"done": 24}, after.counts
    with VoxelStore(settings) as store:
        versions = Reprocessor(settings, store).versions(victim)["extract"]
        assert [(v.seq, v.run_id, v.current) for v in versions] == [
            (1, None, False),
            (2, run_id, True),
        ]
    with OutcomeStore(settings) as outcomes:
        replayed = outcomes.dlq_get(records[0].id)
        assert replayed is not None and replayed.status == "resolved"
    for w in workers:
        assert w.stop() == 0
    done = completed()
    assert all(done) and sum(done) == 47, done
