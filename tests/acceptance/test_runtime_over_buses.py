"""One acceptance suite, run over both buses: accounting, metrics, DLQ and replay.

Everything goes through the :class:`~thunderline.ingestor.Ingestor` the bus factory picks, as
``thunderline ingest``, ``dlq replay`` and ``serve`` do: ``memory://`` runs the stages in this
process; RabbitMQ (the session's own vhost on 127.0.0.1:5672, a queue prefix of this test) has
a real :class:`~thunderline.worker.runner.Worker` (classify, package, collect) consume the
broker's queues, and the submitter reads the outcomes its collector records. The assertions
are the same for both: the backend must not show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from thunderline.bus.factory import open_ingestor
from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.dlq.record import Subject
from thunderline.dlq.replay import replay
from thunderline.dlq.store import DeadLetters
from thunderline.events import VOXEL_CREATED, CloudEvent
from thunderline.obs.metrics import REGISTRY
from thunderline.outcomes import OPEN, RESOLVED, OutcomeStore
from thunderline.voxel.store import VoxelStore
from thunderline.worker.runner import Worker
from thunderline.worker.settle import final_outcomes

SMALL_LIMIT = 100  # bytes: the big files are refused (too_large) in the first run
GOOD, BAD = 4, 2


def metric(name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


@dataclass
class Deployment:
    """Settings of one run (``memory://`` or RabbitMQ) and the worker a broker needs."""

    bus: str
    make: Callable[..., Settings]
    worker: Worker | None = None

    def settings(self, **overrides: Any) -> Settings:
        return self.make(enable_ml_pipeline=False, **overrides)


@pytest.fixture(params=["memory", "rabbitmq"])
async def deployment(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[Deployment]:
    if request.param == "memory":
        yield Deployment("memory", make_settings)
        return
    url = request.getfixturevalue("rabbitmq_url")
    prefix = request.getfixturevalue("bus_prefix")

    def make(**overrides: Any) -> Settings:
        return make_settings(bus_url=url, bus_queue_prefix=prefix, **overrides)

    found = Deployment("rabbitmq", make)
    found.worker = Worker(found.settings(), ["classify", "package", "collect"])
    await found.worker.start()
    try:
        yield found
    finally:
        await found.worker.shutdown()


def make_files(folder: Path) -> tuple[list[Path], list[Path]]:
    folder.mkdir()
    good = [folder / f"small{i}.txt" for i in range(GOOD)]
    bad = [folder / f"big{i}.txt" for i in range(BAD)]
    for i, path in enumerate(good):
        path.write_text(f"small file {i}\n")
    for i, path in enumerate(bad):
        path.write_text(f"big file {i}: " + "x" * 400 + "\n")
    return good, bad


async def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_accounting_metrics_dlq_and_replay(deployment: Deployment, tmp_path: Path) -> None:
    good, bad = make_files(tmp_path / "in")
    ok_before = metric("thunderline_ingest_completed_total", outcome="ok")
    dlq_before = metric("thunderline_ingest_completed_total", outcome="dlq")
    too_large_before = metric("thunderline_dlq_total", stage="classify", reason="too_large")

    # ---- accounting: every artifact ends exactly once, reported once --------------------
    ends: list[CloudEvent] = []
    first = deployment.settings(max_artifact_bytes=SMALL_LIMIT)
    async with open_ingestor(first, on_outcome=ends.append) as ingestor:
        assert (ingestor.runtime is not None) is (deployment.bus == "memory")
        submitted = await ingestor.submit_files(Candidate(p, p.parent) for p in good + bad)
        await ingestor.wait_idle(timeout_s=120)
    assert submitted == GOOD + BAD
    assert len(ends) == GOOD + BAD
    assert len({e.correlationid for e in ends}) == GOOD + BAD
    assert sorted(e.type == VOXEL_CREATED for e in ends) == [False] * BAD + [True] * GOOD
    with OutcomeStore(first) as store:
        final = final_outcomes(store.by_correlations([e.correlationid for e in ends]))
        assert sorted(r.kind for r in final.values()) == ["dlq"] * BAD + ["voxel"] * GOOD

    # ---- metrics: the DLQ-rate alert's numerator and denominator both move --------------
    assert metric("thunderline_ingest_completed_total", outcome="ok") == ok_before + GOOD
    assert metric("thunderline_ingest_completed_total", outcome="dlq") == dlq_before + BAD
    too_large = metric("thunderline_dlq_total", stage="classify", reason="too_large")
    assert too_large == too_large_before + BAD

    # ---- DLQ: one record per refused file, open, about that file --------------------------
    with OutcomeStore(first) as store:
        letters = DeadLetters(store).all(OPEN)
    assert sorted(Subject.of(letter.event).name or "" for letter in letters) == sorted(
        p.name for p in bad
    )
    assert {letter.event.data["reason"] for letter in letters} == {"too_large"}
    assert all(Subject.of(letter.event).original is not None for letter in letters)

    # ---- replay: claim -> submit -> settle, then resolved; a second replay sends nothing --
    fixed = deployment.settings()  # the default limit: the big files fit now
    async with open_ingestor(fixed) as ingestor:
        store_letters = DeadLetters(ingestor.outcomes)
        sent = [await replay(store_letters, letter, ingestor.submit) for letter in letters]
        assert all(s is not None for s in sent)
        again = [await replay(store_letters, letter, ingestor.submit) for letter in letters]
        assert again == [None, None]  # claimed already: nothing sent twice
        await ingestor.wait_idle(timeout_s=120)

        def resolved() -> bool:
            found = [ingestor.outcomes.dlq_get(letter.id) for letter in letters]
            return all(r is not None and r.status == RESOLVED for r in found)

        await wait_for("the replayed records to be resolved", resolved)
    assert metric("thunderline_ingest_completed_total", outcome="ok") == ok_before + GOOD + BAD
    assert metric("thunderline_ingest_completed_total", outcome="dlq") == dlq_before + BAD
    with OutcomeStore(fixed) as store:
        assert DeadLetters(store).all(OPEN) == []


#: Routes of the degrade test: the PDF is extracted (nothing else needs a model).
EXTRACT_ONLY = {"pdf": ["extract", "package"], "txt": ["package"], "text": ["package"]}


async def test_a_failed_stage_degrades_and_replay_completes_the_same_voxel(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Degrade, don't drop, the same over both buses: a PDF whose extraction times out (a
    fault set on purpose: a 1 ms budget) is stored without text, its DLQ record names the
    voxel, the artifact counts once (``degraded``); the replay, with the default budget,
    completes the same voxel."""
    for bus in ("memory", "rabbitmq"):
        await _degrade_and_complete(request, make_settings, tmp_path / bus, bus)


async def _degrade_and_complete(
    request: pytest.FixtureRequest,
    make_settings: Callable[..., Settings],
    folder: Path,
    bus: str,
) -> None:
    folder.mkdir(parents=True)
    pdf = folder / "spec.pdf"
    pdf.write_bytes(
        (
            Path(__file__).resolve().parents[2] / "examples" / "shared-mime-info-spec.pdf"
        ).read_bytes()
    )
    note = folder / "note.txt"
    note.write_text("a short note\n")
    extra: dict[str, Any] = {"home": folder / "home"}
    if bus == "rabbitmq":
        extra.update(
            bus_url=request.getfixturevalue("rabbitmq_url"),
            bus_queue_prefix=f"{request.getfixturevalue('bus_prefix')}d",
        )

    def settings(**overrides: Any) -> Settings:
        return make_settings(enable_ml_pipeline=True, routes=EXTRACT_ONLY, **extra, **overrides)

    async def worker(current: Settings) -> Worker | None:
        if bus == "memory":
            return None
        found = Worker(current, ["classify", "extract", "package", "collect"])
        await found.start()
        return found

    before = {
        o: metric("thunderline_ingest_completed_total", outcome=o)
        for o in ("ok", "degraded", "dlq")
    }
    timeouts_before = metric("thunderline_dlq_total", stage="extract", reason="timeout")
    broken = settings(extract_timeouts={"pdf": 0.001, "ocr": 0.001}, max_attempts=1)
    running = await worker(broken)
    ends: list[CloudEvent] = []
    try:
        async with open_ingestor(broken, on_outcome=ends.append) as ingestor:
            await ingestor.submit_files(Candidate(p, p.parent) for p in (pdf, note))
            await ingestor.wait_idle(timeout_s=180)
    finally:
        if running is not None:
            await running.shutdown()

    with OutcomeStore(broken) as store:
        records = store.by_correlations([e.correlationid for e in ends])
        final = final_outcomes(records)
        assert sorted(r.kind for r in final.values()) == ["voxel", "voxel"]
        [letter] = DeadLetters(store).all(OPEN)
    degraded = [r for r in final.values() if r.event.data.get("failures")]
    assert len(degraded) == 1
    voxel_id = degraded[0].voxel_id
    assert letter.voxel_id == voxel_id and letter.event.data["reason"] == "timeout"
    assert letter.event.data["stage"] == "extract" and letter.event.data["traceback"]
    # the artifact ended once, as degraded; its record counted where it failed
    after = {
        o: metric("thunderline_ingest_completed_total", outcome=o)
        for o in ("ok", "degraded", "dlq")
    }
    assert after == {
        "ok": before["ok"] + 1,
        "degraded": before["degraded"] + 1,
        "dlq": before["dlq"],
    }
    assert metric("thunderline_dlq_total", stage="extract", reason="timeout") == timeouts_before + 1

    fixed = settings()
    running = await worker(fixed)
    try:
        async with open_ingestor(fixed) as ingestor:
            sent = await replay(DeadLetters(ingestor.outcomes), letter, ingestor.submit)
            assert sent is not None and sent.data["voxel_id"] == voxel_id
            await ingestor.wait_idle(timeout_s=180)

            def resolved() -> bool:
                found = ingestor.outcomes.dlq_get(letter.id)
                return found is not None and found.status == RESOLVED

            await wait_for("the replayed record to be resolved", resolved, timeout_s=180)
    finally:
        if running is not None:
            await running.shutdown()
    with VoxelStore(fixed) as voxels:
        assert voxels.count() == 2  # completed in place: no third voxel
        voxel = voxels.get(voxel_id)
        assert "failures" not in voxel.traits and voxel.traits["extract"]["text_ref"]
        assert [r["revision"] for r in voxels.revisions(voxel_id)] == [1]
        assert all(check.ok for check in voxels.verify_all())
