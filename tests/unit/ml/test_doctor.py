"""Rows for ``thunderline doctor``: runtime, registry, checksums and model health."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.unit.ml._helpers import MODELS, MODELS_KEY, tamper

from thunderline.config import Settings
from thunderline.ml import doctor_report


def test_healthy_models_report_ok(make_settings: Callable[..., Settings]) -> None:
    rows = doctor_report(
        make_settings(onnx_model_dir=MODELS, model_public_key=MODELS_KEY, onnx_enabled=True)
    )
    by_check = {check: (status, detail) for check, status, detail in rows}
    assert by_check["onnx runtime"][0] == "ok"
    assert by_check["model registry"][0] == "ok"
    for name in ("image_classifier", "image_classifier_fixed", "text_classifier"):
        status, detail = by_check[f"model {name}"]
        assert status == "ok" and "healthy" in detail


def test_tampered_model_and_disabled_onnx(
    make_settings: Callable[..., Settings], model_copy: Path
) -> None:
    tamper(model_copy / "image_classifier_fixed" / "onnx" / "image_classifier_fixed.onnx")
    rows = doctor_report(make_settings(onnx_model_dir=model_copy, model_public_key=MODELS_KEY))
    by_check = {check: (status, detail) for check, status, detail in rows}
    assert by_check["onnx enabled"][0] == "warn"
    status, detail = by_check["model image_classifier_fixed"]
    assert status == "fail" and "mismatch" in detail
    assert by_check["model image_classifier"][0] == "ok"


def test_missing_registry(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    rows = doctor_report(
        make_settings(onnx_model_dir=tmp_path, model_public_key=MODELS_KEY, onnx_enabled=True)
    )
    assert ("model registry", "fail") in [(c, s) for c, s, _ in rows]
