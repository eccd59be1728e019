"""Acceptance (roadmap 2.7): ONNX inference in-process.

- load and round-trip a tensor through the registry's image model;
- p95 latency recorded in telemetry (the Prometheus histogram and the telemetry events);
- a failure emits a DLQ event and an error metric, through the real pipeline;
- a 60-second soak at 50 msg/s through the infer stage: no queue growth, RSS growth under 10%
  after warm-up, DLQ rate under 1% (slow).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from tests.fixtures.models.signed import MODELS, MODELS_KEY

from thunderline.bus.memory import MemoryBus
from thunderline.config import Settings
from thunderline.events import DLQ_INFERENCE, INFERENCE_COMPLETED, CloudEvent
from thunderline.flow.engine import Pipeline
from thunderline.ml import ModelRegistry
from thunderline.ml.stage import InferStage
from thunderline.objects.local import LocalObjectStore
from thunderline.obs import metrics, telemetry
from thunderline.testing import classified
from thunderline.testing.samples import image_bytes

HISTOGRAM = "thunderline_onnx_infer_duration_seconds"
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _bucket_counts(model: str) -> dict[float, float]:
    counts = {
        le: metrics.sample(f"{HISTOGRAM}_bucket", {"model": model, "le": str(le)}) for le in BUCKETS
    }
    counts[float("inf")] = metrics.sample(f"{HISTOGRAM}_bucket", {"model": model, "le": "+Inf"})
    return counts


def _p95_bucket(before: Mapping[float, float], after: Mapping[float, float]) -> float:
    """Upper bound of the bucket holding the 95th percentile of the observations in between."""
    total = after[float("inf")] - before[float("inf")]
    for le in sorted(after):
        if after[le] - before[le] >= 0.95 * total:
            return le
    return float("inf")


def _stage_pipeline(
    settings: Settings, tmp_path: Path
) -> tuple[Pipeline, LocalObjectStore, MemoryBus, list[CloudEvent]]:
    store = LocalObjectStore(tmp_path / "objects")
    out: list[CloudEvent] = []
    bus = MemoryBus()
    pipeline = Pipeline(
        bus, [InferStage(settings, store)], on_terminal=out.append, shutdown_timeout_s=10
    )
    return pipeline, store, bus, out


def test_load_and_round_trip_a_tensor() -> None:
    registry = ModelRegistry(MODELS, public_key=MODELS_KEY)
    model = registry.get_model("image_classifier")
    x = np.random.default_rng(42).normal(0, 1, (2, 3, 224, 224)).astype(np.float32)
    first = model.infer({"pixel_values": x}, correlation_id="acceptance")
    second = model.infer({"pixel_values": x})
    probs = first["probabilities"]
    assert probs.shape == (2, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probs, second["probabilities"])  # deterministic
    assert not np.allclose(probs[0], probs[1])  # depends on the input
    assert first.first.metadata == {
        "model": "image_classifier",
        "version": "1.0.0",
        "inference_ms": first.inference_ms,
        "correlation_id": "acceptance",
    }


async def test_p95_latency_is_recorded_in_telemetry(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(onnx_model_dir=MODELS, model_public_key=MODELS_KEY, onnx_enabled=True)
    pipeline, store, _bus, out = _stage_pipeline(settings, tmp_path)
    durations: list[float] = []

    def handler(
        name: tuple[str, ...], measurements: Mapping[str, float], meta: Mapping[str, Any]
    ) -> None:
        if (
            name == ("thunderline", "onnx", "infer", "stop")
            and meta.get("model") == "image_classifier"
        ):
            durations.append(measurements["duration"])

    await pipeline.start()
    try:
        before = _bucket_counts("image_classifier")
        sum_before = metrics.sample(f"{HISTOGRAM}_sum", {"model": "image_classifier"})
        telemetry.attach("acceptance-p95", handler)
        events = [classified(store, image_bytes(i % 10), "png", route=["infer"]) for i in range(40)]
        for event in events:
            await pipeline.submit(event)
        await pipeline.wait_idle(120)
    finally:
        telemetry.detach("acceptance-p95")
        await pipeline.stop()
    failed = [
        (e.data.get("stage"), e.data.get("reason"), e.data.get("error")) for e in out if e.is_dlq
    ]
    assert [e.type for e in out] == [INFERENCE_COMPLETED] * 40, failed
    after = _bucket_counts("image_classifier")
    runs = after[float("inf")] - before[float("inf")]
    assert runs == len(durations) and 1 <= runs <= 40  # one observation per ORT run
    p95_bound = _p95_bucket(before, after)
    p95_measured = float(np.percentile(durations, 95))
    assert p95_measured <= p95_bound <= 1.0
    sum_after = metrics.sample(f"{HISTOGRAM}_sum", {"model": "image_classifier"})
    assert sum_after - sum_before == pytest.approx(sum(durations), rel=1e-6)
    assert HISTOGRAM.encode() in metrics.exposition()


async def test_failure_emits_dlq_event_and_error_metric(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(onnx_model_dir=MODELS, model_public_key=MODELS_KEY, onnx_enabled=True)
    pipeline, store, _bus, out = _stage_pipeline(settings, tmp_path)
    labels = {"model": "image_classifier", "reason": "preprocess"}
    errors_before = metrics.sample("thunderline_onnx_infer_errors_total", labels)
    dlq_before = metrics.sample("thunderline_dlq_total", {"stage": "infer", "reason": "preprocess"})
    await pipeline.start()
    try:
        good = classified(store, image_bytes(1), "png", route=["infer"])
        bad = classified(store, b"GIF89a truncated image bytes", "png", route=["infer"])
        await pipeline.submit(good)
        await pipeline.submit(bad)
        await pipeline.wait_idle(60)
    finally:
        await pipeline.stop()
    by_cause = {e.causationid: e for e in out}
    assert by_cause[good.id].type == INFERENCE_COMPLETED
    dlq = by_cause[bad.id]
    assert dlq.type == DLQ_INFERENCE
    assert dlq.data["reason"] == "preprocess" and dlq.data["traceback"]
    assert dlq.data["original"]["id"] == bad.id and dlq.correlationid == bad.correlationid
    assert metrics.sample("thunderline_onnx_infer_errors_total", labels) == errors_before + 1
    assert metrics.sample("thunderline_dlq_total", {"stage": "infer", "reason": "preprocess"}) == (
        dlq_before + 1
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_soak_60s_at_50_msgs_per_second(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    rate, duration_s, warmup_s = 50, 60.0, 10.0
    settings = make_settings(onnx_model_dir=MODELS, model_public_key=MODELS_KEY, onnx_enabled=True)
    pipeline, store, bus, out = _stage_pipeline(settings, tmp_path)
    payloads = [image_bytes(seed, fmt="JPEG" if seed % 2 else "PNG") for seed in range(25)]
    process = psutil.Process()
    samples: list[tuple[float, int, int, int]] = []  # (t, infer depth, outstanding, rss)
    await pipeline.start()
    try:
        started = time.monotonic()
        next_sample = started
        total = int(rate * duration_s)
        for i in range(total):
            await pipeline.submit(
                classified(store, payloads[i % len(payloads)], "png", route=["infer"])
            )
            now = time.monotonic()
            if now >= next_sample:
                samples.append(
                    (
                        now - started,
                        bus.depth("infer"),
                        pipeline.outstanding,
                        process.memory_info().rss,
                    )
                )
                next_sample += 1.0
            delay = started + (i + 1) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        submit_s = time.monotonic() - started
        await pipeline.wait_idle(30)
        drained_s = time.monotonic() - started - submit_s
    finally:
        await pipeline.stop()

    assert submit_s < duration_s * 1.1, f"could not keep 50 msg/s ({submit_s:.1f}s)"
    assert drained_s < 5.0, f"backlog took {drained_s:.1f}s to drain"
    after_warmup = [s for s in samples if s[0] >= warmup_s]
    assert len(after_warmup) >= 40
    # no queue growth: the backlog stays small and does not trend upward
    outstanding = [s[2] for s in after_warmup]
    assert max(outstanding) <= rate, f"outstanding grew to {max(outstanding)}"
    half = len(outstanding) // 2
    assert np.mean(outstanding[half:]) <= np.mean(outstanding[:half]) + 10
    assert max(s[1] for s in after_warmup) <= rate
    # RSS growth under 10% after warm-up
    rss_base, rss_max = after_warmup[0][3], max(s[3] for s in after_warmup)
    assert (rss_max - rss_base) / rss_base < 0.10, f"RSS {rss_base} -> {rss_max}"
    # DLQ rate under 1%
    assert len(out) == total
    dlq = [e for e in out if e.type == DLQ_INFERENCE]
    assert len(dlq) / total < 0.01, [e.data["reason"] for e in dlq[:5]]
    print(
        f"soak: {total} msgs in {submit_s:.1f}s, drained in {drained_s:.2f}s, "
        f"max outstanding {max(outstanding)}, RSS {rss_base / 2**20:.0f} -> "
        f"{rss_max / 2**20:.0f} MiB, DLQ {len(dlq)}"
    )
