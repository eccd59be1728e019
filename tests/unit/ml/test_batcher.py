"""Dynamic batching: batched results equal unbatched ones; fixed batch runs one by one."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np
import pytest
from tests.unit.ml._helpers import MODELS

from thunderline.ml import (
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
