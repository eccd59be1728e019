"""Dynamic batching: batched results equal unbatched ones; fixed batch runs one by one."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np
import pytest
from tests.unit.ml._helpers import MODELS

from thunderline.ml import (
    BatchPolicy,
    DynamicBatcher,
    InferenceResult,
    ModelInputError,
    ModelUnavailableError,
    OnnxModel,
    SessionConfig,
    calibrate_batch_cap,
)
from thunderline.obs import metrics


@pytest.fixture(scope="module")
def dynamic_model() -> OnnxModel:
    return OnnxModel.from_path(
        MODELS / "image_classifier" / "onnx" / "image_classifier.onnx",
        name="image_classifier",
        config=SessionConfig(threads=2),
    )


@pytest.fixture(scope="module")
def fixed_model() -> OnnxModel:
    return OnnxModel.from_path(
        MODELS / "image_classifier_fixed" / "onnx" / "image_classifier_fixed.onnx",
        name="image_classifier_fixed",
    )


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, (1, 3, 224, 224)).astype(np.float32) for _ in range(n)]


def _submit_together(batcher: DynamicBatcher, inputs: list[np.ndarray]) -> list[InferenceResult]:
    """Submit every input at (nearly) the same moment from separate threads."""
    barrier = threading.Barrier(len(inputs))
    futures: list[Future[InferenceResult] | None] = [None] * len(inputs)

    def go(i: int) -> None:
        barrier.wait()
        futures[i] = batcher.submit(inputs[i], correlation_id=f"c{i}")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [f.result(60) for f in futures if f is not None]


def test_batched_results_equal_unbatched(dynamic_model: OnnxModel) -> None:
    inputs = _images(8)
    unbatched = [dynamic_model.infer(x)["probabilities"] for x in inputs]
    before = metrics.sample("thunderline_onnx_batch_size_count", {"model": "image_classifier"})
    batcher = DynamicBatcher(dynamic_model, max_batch_size=8, max_queue_delay_s=0.2)
    try:
        results = _submit_together(batcher, inputs)
    finally:
        batcher.close()
    assert max(r.batch_size for r in results) > 1  # they really ran together
    for i, (result, reference) in enumerate(zip(results, unbatched, strict=True)):
        assert result.correlation_id == f"c{i}"
        assert result["probabilities"].shape == (1, 10)
        np.testing.assert_allclose(result["probabilities"], reference, rtol=1e-4, atol=1e-6)
    runs = metrics.sample("thunderline_onnx_batch_size_count", {"model": "image_classifier"})
    assert runs - before < len(inputs)  # fewer ORT calls than requests


def test_multi_row_requests_are_split_back(dynamic_model: OnnxModel) -> None:
    a = np.concatenate(_images(2, seed=1))
    b = _images(1, seed=2)[0]
    batcher = DynamicBatcher(dynamic_model, max_batch_size=4, max_queue_delay_s=0.2)
    try:
        ra, rb = _submit_together(batcher, [a, b])
    finally:
        batcher.close()
    assert ra["probabilities"].shape == (2, 10) and rb["probabilities"].shape == (1, 10)
    np.testing.assert_allclose(
        ra["probabilities"], dynamic_model.infer(a)["probabilities"], rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(
        rb["probabilities"], dynamic_model.infer(b)["probabilities"], rtol=1e-4, atol=1e-6
    )


def test_fixed_batch_model_runs_one_by_one(fixed_model: OnnxModel) -> None:
    inputs = _images(4, seed=3)
    batcher = DynamicBatcher(fixed_model, max_batch_size=8, max_queue_delay_s=0.2)
    try:
        results = _submit_together(batcher, inputs)
    finally:
        batcher.close()
    assert [r.batch_size for r in results] == [1, 1, 1, 1]
    for result, x in zip(results, inputs, strict=True):
        np.testing.assert_array_equal(
            result["probabilities"], fixed_model.infer(x)["probabilities"]
        )


def test_a_bad_request_fails_alone(dynamic_model: OnnxModel) -> None:
    good = _images(2, seed=4)
    bad = np.zeros((1, 224, 224, 3), np.float32)
    batcher = DynamicBatcher(dynamic_model, max_batch_size=8, max_queue_delay_s=0.2)
    try:
        futures = [batcher.submit(good[0]), batcher.submit(bad), batcher.submit(good[1])]
        assert futures[0].result(60)["probabilities"].shape == (1, 10)
        with pytest.raises(ModelInputError, match="expected shape"):
            futures[1].result(60)
        assert futures[2].result(60)["probabilities"].shape == (1, 10)
    finally:
        batcher.close()


async def test_infer_async_and_closed_batcher_fails_fast(dynamic_model: OnnxModel) -> None:
    batcher = DynamicBatcher(dynamic_model, max_batch_size=2, max_queue_delay_s=0.0)
    result = await batcher.infer_async(_images(1)[0])
    assert result.batch_size == 1
    batcher.close()
    with pytest.raises(ModelUnavailableError, match="closed"):
        batcher.infer(_images(1)[0], timeout=5)


def test_calibrated_cap_is_a_power_of_two_within_max(
    dynamic_model: OnnxModel, fixed_model: OnnxModel
) -> None:
    cap = calibrate_batch_cap(dynamic_model, 4, reps=1)
    assert cap in (1, 2, 4)
    assert calibrate_batch_cap(fixed_model, 8) == 1
    assert calibrate_batch_cap(dynamic_model, 1) == 1


def _feed(policy: BatchPolicy, per_item_ms: dict[int, float], batches: int) -> list[int]:
    """Run ``batches`` batches at the policy's target (always reachable); the targets seen."""
    seen = []
    for _ in range(batches):
        size = policy.target()
        seen.append(size)
        policy.observe(size, per_item_ms[size] * size / 1000, size)
    return seen


def test_policy_tries_preferred_sizes_largest_first_then_keeps_the_cheapest() -> None:
    policy = BatchPolicy(8, samples=2, explore_every=1000)
    assert policy.preferred == (8, 4, 2, 1)
    costs = {8: 5.0, 4: 4.0, 2: 4.6, 1: 6.0}  # ms per item: 4 is best
    seen = _feed(policy, costs, 9)
    assert seen == [8, 8, 8, 4, 4, 4, 2, 2, 2]
    # halving 4 -> 2 made it slower per item: 1 is not tried, 4 is kept
    assert _feed(policy, costs, 5) == [4] * 5
    assert policy.snapshot()["target"] == 4
    going_down = BatchPolicy(8, samples=2, explore_every=1000)
    cheaper = {8: 5.0, 4: 4.0, 2: 3.5, 1: 6.0}
    assert _feed(going_down, cheaper, 12) == [8] * 3 + [4] * 3 + [2] * 3 + [1] * 3
    assert _feed(going_down, cheaper, 3) == [2] * 3


def test_policy_minimises_cpu_per_item_when_given_not_wall_time() -> None:
    """A busy machine stretches wall time at random; the CPU a run took decides the size."""
    policy = BatchPolicy(8, samples=2, explore_every=1000)
    wall = {8: 2.0, 4: 3.0, 2: 9.0, 1: 9.5}  # ms per item: wall time says 8
    cpu = {8: 5.4, 4: 4.6, 2: 4.4, 1: 4.7}  # CPU says 2
    for _ in range(20):
        size = policy.target()
        policy.observe(size, wall[size] * size / 1000, size, cpu[size] * size / 1000)
    assert policy.target() == 2
    snap = policy.snapshot()
    assert snap["cost"] == "cpu" and snap["per_item_ms"][2] == 4.4
    walled = BatchPolicy(8, samples=2, explore_every=1000)
    assert _feed(walled, wall, 20)[-1] == 8 and walled.snapshot()["cost"] == "wall"


def test_policy_retries_a_neighbour_and_follows_a_change_of_load() -> None:
    policy = BatchPolicy(8, samples=1, explore_every=10, alpha=1.0)
    costs = {8: 5.0, 4: 4.0, 2: 4.6, 1: 6.0}
    seen = _feed(policy, costs, 60)
    assert {8, 2} <= set(seen[10:])  # neighbours of 4 retried now and then
    assert seen[-1] in (4, 8, 2) and seen.count(4) > len(seen) // 2
    costs = {8: 3.0, 4: 4.0, 2: 4.6, 1: 6.0}  # the machine changed: 8 is best now
    assert _feed(policy, costs, 60)[-5:] == [8] * 5


def test_policy_gives_up_sizes_it_cannot_gather() -> None:
    policy = BatchPolicy(8, samples=2)
    for _ in range(20):  # two callers: at most 2 requests ever wait
        wanted = policy.target()
        size = min(wanted, 2)
        policy.observe(size, 0.004 * size, wanted)
    assert policy.target() in (1, 2)


def test_policy_stops_waiting_when_waits_bring_nothing_and_tries_again_later() -> None:
    policy = BatchPolicy(8)
    assert policy.should_wait()
    for _ in range(10):
        policy.waited(False)
    decisions = [policy.should_wait() for _ in range(32)]
    assert decisions.count(True) == 2  # one try every 16
    for _ in range(10):
        policy.waited(True)
    assert policy.should_wait()


def test_fixed_policy_always_targets_the_cap() -> None:
    policy = BatchPolicy(8, adaptive=False)
    assert _feed(policy, {8: 9.0}, 5) == [8] * 5


def test_one_caller_batcher_learns_batch_one_and_stops_waiting(dynamic_model: OnnxModel) -> None:
    batcher = DynamicBatcher(dynamic_model, max_batch_size=4, max_queue_delay_s=0.05)
    try:
        x = _images(1)[0]
        sizes = [batcher.infer(x, timeout=60).batch_size for _ in range(30)]
        assert sizes == [1] * 30
        assert batcher.policy.target() == 1 and batcher.batch_cap == 1
        assert batcher.policy.wait_yield < 0.5  # its waits brought nothing
    finally:
        batcher.close()
