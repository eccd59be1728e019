"""A user's Keras model serving after one command (issue 24): ``models add my.keras``
converts, validates, signs with the key given and registers it; the next ingest of the labels
it applies to is answered by it, and the other images still go to the default model."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from tests.unit.convert.conftest import small_model
from tests.unit.ml._helpers import drop_cli_log_handlers, signed_fixture_models
from typer.testing import CliRunner

from thunderline.cli import app
from thunderline.convert import ConvertUnavailableError, import_keras
from thunderline.testing.samples import image_bytes

runner = CliRunner()


@pytest.fixture(scope="module")
def keras() -> ModuleType:
    try:
        return import_keras()
    except ConvertUnavailableError as exc:
        if os.environ.get("TL_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{exc} (TL_TEST_REQUIRE_SERVICES=1: the convert extra is required)")
        pytest.skip(str(exc))


def test_a_keras_model_serves_after_one_command(keras: ModuleType, tmp_path: Path) -> None:
    models = signed_fixture_models(tmp_path / "models", tmp_path / "keys")
    for path in [models, *models.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    key = tmp_path / "keys" / "throwaway.pem"  # the test's own EC P-256 key
    source = tmp_path / "mine.keras"
    small_model(keras).save(source)
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "before.png").write_bytes(image_bytes(1))
    env = {
        "TL_HOME": str(tmp_path / "home"),
        "TL_ONNX_ENABLED": "true",
        "TL_ONNX_MODEL_DIR": str(models),
        "TL_MODEL_PUBLIC_KEY": str(tmp_path / "keys" / "throwaway.pub"),
        "COLUMNS": "200",
    }

    def ingest(path: Path) -> dict[str, object]:
        result = runner.invoke(app, ["ingest", "--json", str(path)], env=env)
        drop_cli_log_handlers()
        assert result.exit_code == 0, result.output
        (record,) = [json.loads(line) for line in result.stdout.splitlines()]
        return record

    before = ingest(inbox / "before.png")
    assert before["inference"]["model"] == "image_classifier"  # type: ignore[index]

    added = runner.invoke(
        app,
        [
            "models",
            "add",
            str(source),
            "--name",
            "mine",
            "--applies-to",
            "png",
            "--labels",
            "circle,square,triangle",
            "--key",
            str(key),
        ],
        env=env,
    )
    drop_cli_log_handlers()
    assert added.exit_code == 0, added.output
    assert "converted and validated" in added.output
    report = json.loads((models / "mine" / "VAL_REPORT.json").read_text(encoding="utf-8"))
    assert report["status"] == "PASS"
    entry = next(
        m
        for m in tomllib.loads((models / "registry.toml").read_text(encoding="utf-8"))["models"]
        if m["name"] == "mine"
    )
    assert entry["input_shape"] == ["batch", 8, 8, 1] and entry["layout"] == "NHWC"

    (inbox / "after.png").write_bytes(image_bytes(2))
    after = ingest(inbox / "after.png")
    inference = after["inference"]
    assert inference["model"] == "mine"  # type: ignore[index]
    assert {t["label"] for t in inference["top_k"]} <= {"circle", "square", "triangle"}  # type: ignore[index]
    verify = runner.invoke(app, ["models", "verify"], env=env)
    drop_cli_log_handlers()
    assert verify.exit_code == 0, verify.output
