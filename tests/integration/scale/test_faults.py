"""Fault tests of the scale-out mode: real RabbitMQ, PostgreSQL and S3 on loopback.

Each test counts that every submitted artifact ends in exactly one voxel or one DLQ record
(the outcome store, keyed per artifact) and that the voxel table holds no duplicate.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter

import pytest
from tests.integration.scale.conftest import Cluster, host_port, via_proxy
from tests.integration.scale.proxy import TcpProxy

from thunderline.bus.rabbitmq import RabbitMQBus
from thunderline.events import VOXEL_CREATED, CloudEvent
from thunderline.outcomes import OutcomeRecord
from thunderline.worker.runner import Worker


def _assert_exactly_one(
    cluster: Cluster, ids: list[str], outcomes: list[OutcomeRecord]
) -> Counter[str]:
    """Each submission (one file each) ended in exactly one voxel or one DLQ record."""
    per_submission = Counter(o.correlation_id for o in outcomes)
    assert set(per_submission) == set(ids)
    assert all(n == 1 for n in per_submission.values()), per_submission.most_common(3)
    raw = cluster.records(ids)
    by_artifact: dict[str, list[str]] = {}
    for record in raw:
        if record.kind == "voxel":  # a redelivered message is processed again, but...
            by_artifact.setdefault(record.correlation_id, []).append(str(record.voxel_id))
    twice = {cid: v for cid, v in by_artifact.items() if len(v) != 1}
    assert not twice, f"{len(twice)} artifact(s) with more than one voxel row"  # ...recorded once
    dlq_and_voxel = {r.correlation_id for r in raw if r.kind == "dlq"} & set(by_artifact)
    assert not dlq_and_voxel, "an artifact ended both as a voxel and in the DLQ"
    rows = cluster.voxel_rows()
    assert len(rows) == len({source for _, source in rows})  # no duplicate voxel per source
    return Counter(o.kind for o in outcomes)


async def _wait_count(cluster: Cluster, ids: list[str], at_least: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = await asyncio.to_thread(cluster.outcome_count, ids)
        if n >= at_least:
            return n
        await asyncio.sleep(0.1)
    raise TimeoutError(f"fewer than {at_least} outcomes after {timeout_s}s")


async def _wait_total(cluster: Cluster, at_least: int, timeout_s: float) -> int:
    """Wait until the outcome store holds ``at_least`` voxel records (any submission)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = (await asyncio.to_thread(cluster.counts)).get("ok", 0)
        if n >= at_least:
            return n
        await asyncio.sleep(0.05)
    raise TimeoutError(f"fewer than {at_least} outcomes after {timeout_s}s")


async def test_sigkill_mid_batch_redelivers_to_the_other_worker(cluster: Cluster) -> None:
    slow = {"TL_CLASSIFY_BATCH_SIZE": "8"}
    a = cluster.worker("classify,package", env=slow)
    b = cluster.worker("classify,package", env=slow)
    collector = cluster.worker("collect")
    for w in (a, b, collector):
        w.wait_ready()
    paths = cluster.make_files(300)
    ids = await cluster.submit(paths)
    done_before = await _wait_count(cluster, ids, 30, 60)
    a.stop(signal.SIGKILL)
    assert a.proc.returncode == -signal.SIGKILL
    assert done_before < len(ids), "the run finished before the kill: not mid-run"
    outcomes = await cluster.wait(ids, timeout_s=120)
    kinds = _assert_exactly_one(cluster, ids, outcomes)
    assert kinds == {"voxel": 300}
    assert cluster.voxel_count() == 300
    assert b.proc.poll() is None  # the survivor did the rest...
    assert "quarantined" in b.text()  # ...including what a held when it was killed


async def test_graceful_sigterm_finishes_what_it_holds(cluster: Cluster) -> None:
    a = cluster.worker("classify,package,collect")
    a.wait_ready()
    ids = await cluster.submit(cluster.make_files(120))
    await _wait_count(cluster, ids, 10, 60)
    assert a.stop(signal.SIGTERM, timeout_s=40) == 0
    assert "stopped after" in a.text()
    b = cluster.worker("classify,package,collect")  # what a left in the queues
    b.wait_ready()
    outcomes = await cluster.wait(ids, timeout_s=120)
    assert _assert_exactly_one(cluster, ids, outcomes) == {"voxel": 120}


async def test_rabbitmq_connection_cut_for_5s(cluster: Cluster) -> None:
    upstream = host_port(cluster.env["TL_BUS_URL"], 5672)
    with TcpProxy(upstream) as proxy:
        through = {"TL_BUS_URL": via_proxy(cluster.env["TL_BUS_URL"], proxy.port)}
        a = cluster.worker("classify,package,collect", env=through)
        a.wait_ready()
        submitting = asyncio.create_task(cluster.submit(cluster.make_files(400)))
        before = await _wait_total(cluster, 10, 60)
        await asyncio.to_thread(proxy.cut_for, 5.0)  # while files are still being submitted
        ids = await submitting
        assert before < len(ids), "the run finished before the cut: not mid-run"
        outcomes = await cluster.wait(ids, timeout_s=120)
        assert proxy.refused >= 1  # the worker tried to reconnect during the cut
        assert "connection restored" in a.text()
        assert a.proc.poll() is None
        log = a.text()  # one clear line per loss and reconnect, no client library traceback
        assert "Traceback" not in log and "Logging error" not in log, log[-3000:]
        assert log.count("connection lost") == log.count("connection restored") >= 1, log[-3000:]
    assert _assert_exactly_one(cluster, ids, outcomes) == {"voxel": 400}


async def test_broker_cut_for_8s_under_two_workers_records_each_artifact_once(
    cluster: Cluster,
) -> None:
    """250 artifacts, two workers (each classify, package and collect) through one proxy, the
    broker cut for 8 s mid-run: messages held when the connection dropped are redelivered and
    processed again, yet the outcome table holds exactly one row per artifact (it held 342
    ``voxel`` rows for 250 artifacts before rows were keyed per artifact and kind)."""
    upstream = host_port(cluster.env["TL_BUS_URL"], 5672)
    with TcpProxy(upstream) as proxy:
        through = {
            "TL_BUS_URL": via_proxy(cluster.env["TL_BUS_URL"], proxy.port),
            "TL_CLASSIFY_BATCH_SIZE": "8",
        }
        workers = [cluster.worker("classify,package,collect", env=through) for _ in range(2)]
        for worker in workers:
            worker.wait_ready()
        submitting = asyncio.create_task(cluster.submit(cluster.make_files(250)))
        before = await _wait_total(cluster, 10, 60)
        await asyncio.to_thread(proxy.cut_for, 8.0)
        ids = await submitting
        assert before < len(ids), "the run finished before the cut: not mid-run"
        outcomes = await cluster.wait(ids, timeout_s=180)
        assert proxy.refused >= 1
        assert all(w.proc.poll() is None for w in workers)
    assert _assert_exactly_one(cluster, ids, outcomes) == {"voxel": 250}
    raw = cluster.records(ids)
    assert len(raw) == 250, Counter(r.kind for r in raw)
    assert cluster.counts() == {"ok": 250}


async def test_postgresql_connection_cut_for_5s(cluster: Cluster) -> None:
    upstream = host_port(cluster.env["TL_DATABASE_URL"], 5432)
    with TcpProxy(upstream) as proxy:
        through = {
            "TL_DATABASE_URL": via_proxy(cluster.env["TL_DATABASE_URL"], proxy.port),
            # retries sized to ride out the outage (0.5 + 1 + 2 + 2 + 2 s of backoff)
            "TL_MAX_ATTEMPTS": "6",
            "TL_RETRY_BACKOFF_S": "0.5",
            "TL_RETRY_BACKOFF_MAX_S": "2",
        }
        a = cluster.worker("classify,package,collect", env=through)
        a.wait_ready()
        submitting = asyncio.create_task(cluster.submit(cluster.make_files(400)))
        before = await _wait_total(cluster, 10, 60)
        await asyncio.to_thread(proxy.cut_for, 5.0)  # while files are still being submitted
        ids = await submitting
        assert before < len(ids), "the run finished before the cut: not mid-run"
        outcomes = await cluster.wait(ids, timeout_s=120)
        # the worker tried to reach PostgreSQL during the cut (package retried with backoff,
        # the collector kept its batch), and nothing was lost or doubled (below)
        assert proxy.refused >= 1
    kinds = _assert_exactly_one(cluster, ids, outcomes)
    assert kinds == {"voxel": 400}, kinds


async def test_poison_message_dead_lettered_after_the_delivery_limit(cluster: Cluster) -> None:
    # the poison shares batches and the prefetch window with innocent messages: every crash
    # returns them too, and the quarantine keeps them from reaching the delivery limit
    batched = {"TL_CLASSIFY_BATCH_SIZE": "4", "TL_CLASSIFY_BATCH_TIMEOUT_S": "0.2"}
    steady = cluster.worker("package,collect")
    steady.wait_ready()
    crashy = cluster.worker("classify", env=batched, fault=True)
    crashy.wait_ready()
    paths = cluster.make_files(20)
    poison = cluster.make_files(1, prefix="poison")
    ids = await cluster.submit(paths[:10] + poison + paths[10:])
    crashes = 0
    deadline = time.monotonic() + 120
    while cluster.outcome_count(ids) < len(ids) and time.monotonic() < deadline:
        if crashy.proc.poll() is not None:  # the supervisor's job: start it again
            assert crashy.proc.returncode == 70
            crashes += 1
            crashy = cluster.worker("classify", env=batched, fault=True)
            crashy.wait_ready()
        await asyncio.sleep(0.1)
    outcomes = await cluster.wait(ids, timeout_s=10)
    kinds = _assert_exactly_one(cluster, ids, outcomes)
    assert kinds == {"voxel": 20, "dlq": 1}
    (dead,) = [o for o in outcomes if o.kind == "dlq"]
    assert dead.event.data["reason"] == "delivery_limit"
    assert dead.event.data["stage"] == "classify"
    assert dead.event.data["original"]["data"]["artifact"]["name"] == "poison00000.txt"
    assert dead.event.data["broker"]["x-death"][0]["reason"] == "delivery_limit"
    assert crashes == 4  # TL_MAX_ATTEMPTS=3: the first delivery and 3 redeliveries
    assert "quarantined" in "".join(w.text() for w in cluster.workers)

    # the fault is fixed (a worker without it); a replay now succeeds and leaves the DLQ
    assert crashy.stop() == 0
    cluster.worker("classify").wait_ready()
    listed = [
        json.loads(line)
        for line in cluster.cli("dlq", "list", "--records", "--json").stdout.splitlines()
    ]
    assert [r["id"] for r in listed] == [dead.id]
    # a broker's delivery-limit dead letter is permanent by its type: forced with --all
    skipped = cluster.cli("dlq", "replay")
    assert skipped.stdout == "" and "skipped 1 (1 permanent)" in skipped.stderr
    replayed = cluster.cli("dlq", "replay", "--all")
    (line,) = replayed.stdout.splitlines()
    assert line.startswith(f"{dead.id} -> ") and "(classify, " in line
    deadline = time.monotonic() + 60
    while cluster.counts().get("resolved") != 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    counts = cluster.counts()  # raw records: a message redelivered after a crash may have
    assert counts["resolved"] == 1 and "open" not in counts  # recorded its voxel twice
    assert cluster.voxel_count() == 21  # ...but the voxels are exactly one per file
    assert cluster.cli("dlq", "list", "--json").stdout.strip() == ""
    shown = json.loads(cluster.cli("dlq", "show", dead.id).stdout)
    assert shown["status"] == "resolved" and shown["event"]["data"]["reason"] == "delivery_limit"
    status = cluster.cli("status", dead.event.correlationid)
    assert "poison00000.txt" in status.stdout and "voxel" in status.stdout


async def test_same_event_delivered_twice_gives_one_voxel(cluster: Cluster) -> None:
    settings = cluster.settings()
    paths = cluster.make_files(1)
    ids = await cluster.submit(paths)

    # the same classify input delivered again (as after a lost ack)
    def bus() -> RabbitMQBus:
        return RabbitMQBus(
            settings.bus.url, prefix=settings.bus.queue_prefix, max_attempts=settings.max_attempts
        )

    taker = bus()
    first = await taker.pull("classify", "t", 1, 10.0)
    assert len(first) == 1
    await taker.prepare_for_draining()
    await taker.publish("classify", first[0].payload)
    await taker.ack(first[0])
    await taker.publish("classify", first[0].payload)
    await taker.close()
    probe = bus()
    worker = Worker(settings, ["classify", "package"])
    await worker.start()
    try:
        created: list[CloudEvent] = []
        deadline = time.monotonic() + 60
        while len(created) < 2 and time.monotonic() < deadline:
            for d in await probe.pull("terminal", "t", 10, 0.5):
                created.append(CloudEvent.from_json(d.payload))
                await probe.ack(d)
    finally:
        await worker.shutdown()
        await probe.close()
    assert [e.type for e in created] == [VOXEL_CREATED, VOXEL_CREATED]
    assert created[0].correlationid == created[1].correlationid == ids[0]
    assert created[0].data["voxel"]["id"] == created[1].data["voxel"]["id"]
    assert sorted(e.data["voxel"]["created"] for e in created) == [False, True]
    assert cluster.voxel_count() == 1


@pytest.mark.slow
async def test_two_workers_two_stages_2000_artifacts(cluster: Cluster) -> None:
    workers = [
        cluster.worker("classify"),
        cluster.worker("classify"),
        cluster.worker("package"),
        cluster.worker("package"),
        cluster.worker("collect"),
    ]
    for w in workers:
        w.wait_ready()
    ids = await cluster.submit(cluster.make_files(2000))
    outcomes = await cluster.wait(ids, timeout_s=280)
    assert _assert_exactly_one(cluster, ids, outcomes) == {"voxel": 2000}
    assert cluster.voxel_count() == 2000
    for w in workers:
        assert w.stop() == 0
    import subprocess
    import sys

    verify = subprocess.run(
        [sys.executable, "-m", "thunderline.cli", "voxels", "verify", "--all"],
        env={**__import__("os").environ, **cluster.env, "TL_HOME": str(cluster.tmp / "v")},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
