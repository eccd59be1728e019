"""``thunderline models list | verify | checksum`` through typer's CliRunner."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.unit.ml._helpers import MODELS, MODELS_KEY, tamper
from typer.testing import CliRunner

from thunderline.ml.cli import models_app

runner = CliRunner()


def test_list_shows_every_model() -> None:
    result = runner.invoke(
        models_app,
        ["list"],
        env={
            "TL_ONNX_MODEL_DIR": str(MODELS),
            "TL_MODEL_PUBLIC_KEY": str(MODELS_KEY),
            "COLUMNS": "200",
        },
    )
    assert result.exit_code == 0, result.output
    for name in ("image_classifier", "image_classifier_fixed", "text_classifier"):
        assert name in result.output
    assert "[batch, 3, 224, 224]" in result.output


def test_verify_passes_on_the_repository_models() -> None:
    result = runner.invoke(
        models_app,
        ["verify"],
        env={
            "TL_ONNX_MODEL_DIR": str(MODELS),
            "TL_MODEL_PUBLIC_KEY": str(MODELS_KEY),
            "COLUMNS": "200",
        },
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("ok") >= 3


def test_verify_fails_on_a_tampered_copy(model_copy: Path) -> None:
    tamper(model_copy / "text_classifier" / "onnx" / "text_classifier.onnx")
    env = {
        "TL_ONNX_MODEL_DIR": str(model_copy),
        "TL_MODEL_PUBLIC_KEY": str(MODELS_KEY),
        "COLUMNS": "200",
    }
    result = runner.invoke(models_app, ["verify"], env=env)
    assert result.exit_code == 1
    assert "mismatch" in result.output
    one = runner.invoke(models_app, ["verify", "image_classifier"], env=env)
    assert one.exit_code == 0, one.output


def test_checksum_prints_the_sha256() -> None:
    path = MODELS / "text_classifier" / "onnx" / "text_classifier.onnx"
    result = runner.invoke(models_app, ["checksum", str(path)])
    assert result.exit_code == 0
    assert result.output.split()[0] == hashlib.sha256(path.read_bytes()).hexdigest()
    missing = runner.invoke(models_app, ["checksum", "/nonexistent/model.onnx"])
    assert missing.exit_code == 2


def test_missing_registry_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(
        models_app,
        ["list"],
        env={"TL_ONNX_MODEL_DIR": str(tmp_path), "TL_MODEL_PUBLIC_KEY": str(MODELS_KEY)},
    )
    assert result.exit_code == 2
