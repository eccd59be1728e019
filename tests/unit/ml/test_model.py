"""OnnxModel: loading, metadata, infer forms and timing, providers, session options."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tests.unit.ml._helpers import MODELS, tiny_bytes

from thunderline.config import Settings
from thunderline.errors import ConfigError
from thunderline.ml import ModelInput, ModelLoadError, OnnxModel, SessionConfig, resolve_providers
from thunderline.ml.model import session_options
from thunderline.obs import metrics, telemetry


def test_load_from_bytes_and_path_agree(tmp_path: Path) -> None:
    data = tiny_bytes()
    (tmp_path / "tiny.onnx").write_bytes(data)
    a = OnnxModel.from_bytes(data, name="tiny")
    b = OnnxModel.from_path(tmp_path / "tiny.onnx")
    assert b.name == "tiny" and b.source.endswith("tiny.onnx")
    x = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    np.testing.assert_array_equal(a.infer(x)["y"], b.infer(x)["y"])


def test_metadata_of_the_image_model() -> None:
    model = OnnxModel.from_path(
        MODELS / "image_classifier" / "onnx" / "image_classifier.onnx", name="image_classifier"
    )
    meta = model.metadata
    assert meta is not None
    assert meta.producer == "thunderline-build-models"
    assert meta.opset == {"ai.onnx": 17}
    assert meta.metadata_props["layout"] == "NCHW"
    assert model.version == "1.0.0"
    assert model.labels[:2] == ["airplane", "automobile"] and len(model.labels) == 10


def test_infer_round_trip_with_timing_and_correlation() -> None:
    model = OnnxModel.from_bytes(tiny_bytes(), name="tiny")
    x = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], np.float32)
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0
    logits = x @ w
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = model.infer({"x": x}, correlation_id="corr-1")
    np.testing.assert_allclose(result["y"], expected, rtol=1e-5)
    assert result.correlation_id == "corr-1"
    assert result.inference_ms > 0 and result.total_ms >= result.inference_ms
    assert result.first.metadata["model"] == "tiny"
    assert result.first.metadata["correlation_id"] == "corr-1"
    for form in (x, ModelInput(x, "x"), [ModelInput(x)]):
        np.testing.assert_array_equal(model.infer(form)["y"], result["y"])


def test_infer_records_duration_histogram_and_telemetry() -> None:
    model = OnnxModel.from_bytes(tiny_bytes(), name="tiny_metrics")
    seen: list[tuple[str, ...]] = []
    telemetry.attach("test-model", lambda name, m, meta: seen.append(name))
    try:
        before = metrics.sample(
            "thunderline_onnx_infer_duration_seconds_count", {"model": "tiny_metrics"}
        )
        for _ in range(3):
            model.infer(np.zeros((1, 4), np.float32))
        with pytest.raises(Exception, match="dtype"):
            model.infer(np.zeros((1, 4), np.int64))
    finally:
        telemetry.detach("test-model")
    after = metrics.sample(
        "thunderline_onnx_infer_duration_seconds_count", {"model": "tiny_metrics"}
    )
    assert after - before == 3
    errors = metrics.sample(
        "thunderline_onnx_infer_errors_total", {"model": "tiny_metrics", "reason": "model_input"}
    )
    assert errors == 1
    assert seen.count(("thunderline", "onnx", "infer", "stop")) == 3
    assert seen.count(("thunderline", "onnx", "infer", "error")) == 1


def test_garbage_bytes_are_a_load_error() -> None:
    with pytest.raises(ModelLoadError):
        OnnxModel.from_bytes(b"definitely not onnx", name="junk")


def test_closed_model_fails_typed() -> None:
    model = OnnxModel.from_bytes(tiny_bytes(), name="tiny")
    model.close()
    with pytest.raises(Exception, match="closed") as info:
        model.infer(np.zeros((1, 4), np.float32))
    assert info.value.__class__.__name__ == "InferenceError"


def test_cuda_falls_back_to_cpu_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here; the fallback cannot be observed")
    with caplog.at_level(logging.WARNING, logger="thunderline.ml"):
        providers = resolve_providers("cuda")
    assert providers == ["CPUExecutionProvider"]
    assert any("falling back to cpu" in r.getMessage() for r in caplog.records)
    model = OnnxModel.from_bytes(tiny_bytes(), config=SessionConfig(provider="cuda"))
    assert model.providers == ["CPUExecutionProvider"]


def test_unknown_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'cpu' or 'cuda'"):
        resolve_providers("tpu")


def test_session_config_from_settings_caps_threads(
    make_settings: Callable[..., Settings],
) -> None:
    cores = os.cpu_count() or 1
    config = SessionConfig.from_settings(make_settings(onnx_threadpool=64))
    assert config.threads == min(64, cores)
    assert not config.allow_spinning
    assert SessionConfig.from_settings(make_settings(onnx_threadpool=1)).threads == 1


def test_session_options_write_nothing_and_do_not_spin() -> None:
    so = session_options(SessionConfig(threads=2))
    assert so.intra_op_num_threads == 2
    assert so.enable_profiling is False
    assert so.optimized_model_filepath == ""
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_loading_and_running_writes_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model = OnnxModel.from_path(MODELS / "image_classifier" / "onnx" / "image_classifier.onnx")
    model.infer(model.spec.dummy_inputs(1))
    model.close()
    assert list(tmp_path.iterdir()) == []
