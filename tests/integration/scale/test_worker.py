"""The scale-out commands end to end: ``ingest --bus`` prints exactly its own outcomes,
``status`` answers later, ``doctor`` reports the broker, a worker never reads a local path."""

from __future__ import annotations

import asyncio
import json

from tests.integration.scale.conftest import Cluster

from thunderline.bus.rabbitmq import RabbitMQBus
from thunderline.classify.walk import Candidate
from thunderline.runtime import ingest_event


async def test_ingest_over_the_bus_prints_only_its_own_outcomes(cluster: Cluster) -> None:
    worker = cluster.worker("classify,package,collect")
    worker.wait_ready()
    others = await cluster.submit(cluster.make_files(30, prefix="other"))  # another submitter
    mine = cluster.make_files(5, prefix="mine")
    folder = cluster.tmp / "mine"
    folder.mkdir()
    for path in mine:
        path.rename(folder / path.name)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "big.txt").write_bytes(b"x" * 5000)  # over the submitter's limit below

    done = await asyncio.to_thread(
        cluster.cli,
        "ingest",
        "--bus",
        cluster.env["TL_BUS_URL"],
        "--json",
        str(folder),
        env={"TL_MAX_ARTIFACT_BYTES": "4096"},
    )
    records = [json.loads(line) for line in done.stdout.splitlines()]
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in records}
    assert sorted(by_name) == sorted([p.name for p in mine] + ["empty.txt", "big.txt"])
    refused = by_name.pop("big.txt")  # admitted by the submitter: refused before any publish
    assert refused["outcome"] == "dlq" and refused["reason"] == "too_large"
    assert refused["stage"] == "classify"
    records = list(by_name.values())
    assert all(r["outcome"] == "ok" and r["voxel_id"] for r in records)
    assert not {r["correlation_id"] for r in records} & set(others)

    status = await asyncio.to_thread(cluster.cli, "status", "--json", records[0]["correlation_id"])
    (later,) = [json.loads(line) for line in status.stdout.splitlines()]
    assert later["voxel_id"] == records[0]["voxel_id"]
    unknown = await asyncio.to_thread(cluster.cli, "status", "no-such-id", check=False)
    assert unknown.returncode == 3

    table = await asyncio.to_thread(cluster.cli, "ingest", str(folder / "empty.txt"))
    assert "Summary" in table.stdout and "ok" in table.stdout
    doctor = await asyncio.to_thread(cluster.cli, "doctor", check=False)
    assert "rabbitmq" in doctor.stdout and "ready" in doctor.stdout
    await cluster.wait(others)


async def test_a_worker_refuses_an_event_that_names_a_local_path(cluster: Cluster) -> None:
    worker = cluster.worker("classify,package,collect")
    worker.wait_ready()
    secret = cluster.tmp / "worker-local.txt"
    secret.write_text("a file on the worker's own disk\n")
    event = ingest_event(Candidate(secret, secret.parent))  # path only, no payload_ref
    settings = cluster.settings()
    bus = RabbitMQBus(settings.bus.url, prefix=settings.bus.queue_prefix)
    try:
        await bus.publish("classify", event.to_bytes())
    finally:
        await bus.close()
    (outcome,) = await cluster.wait([event.correlationid], timeout_s=60)
    assert outcome.kind == "dlq"
    assert outcome.event.data["reason"] == "path_escape"
    assert cluster.voxel_count() == 0
