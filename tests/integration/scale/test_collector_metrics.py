"""The live bug of issue 21: the workers' collector must count every finished artifact in
``thunderline_ingest_completed_total`` (the denominator of ``ThunderlineDLQRateHigh``), as the
in-process collector does. Real RabbitMQ (the session's vhost, a queue prefix of this test)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from thunderline.config import Settings
from thunderline.dlq.record import dead_letter
from thunderline.errors import ArtifactTooLargeError
from thunderline.events import DLQ_CLASSIFY, INGEST_RECEIVED, VOXEL_CREATED, new_event
from thunderline.obs.metrics import REGISTRY
from thunderline.outcomes import OutcomeStore
from thunderline.worker.runner import Worker


def _completed(outcome: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == "thunderline_ingest_completed_total" and (
                sample.labels.get("outcome") == outcome
            ):
                total += sample.value
    return total


async def test_the_workers_collector_counts_finished_artifacts(
    rabbitmq_url: str,
    bus_prefix: str,
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        bus_url=rabbitmq_url, bus_queue_prefix=bus_prefix, enable_ml_pipeline=False
    )
    ok_before, dlq_before = _completed("ok"), _completed("dlq")
    worker = Worker(settings, ["collect"])
    await worker.start()
    try:
        voxel = new_event(VOXEL_CREATED, {"artifact": {"source": "a"}, "voxel": {"id": "v"}})
        request = new_event(INGEST_RECEIVED, {"artifact": {"name": "x"}, "route": []})
        failure = dead_letter(
            "classify", DLQ_CLASSIFY, ArtifactTooLargeError("too big"), original=request
        )
        await worker.bus.publish("terminal", voxel.to_bytes())
        await worker.bus.publish("dlq", failure.to_bytes())
        store = OutcomeStore(settings)
        try:
            for _ in range(200):
                if len(store.by_correlations([voxel.correlationid, request.correlationid])) == 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            store.close()
        for _ in range(50):  # the counters move with the record, before the ack
            if _completed("ok") > ok_before and _completed("dlq") > dlq_before:
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.shutdown()
    assert _completed("ok") == ok_before + 1
    assert _completed("dlq") == dlq_before + 1
