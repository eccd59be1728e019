"""``thunderline models convert``: real Keras 3 export to ONNX, I/O checks, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tests.unit.ml._helpers import throwaway_key
from typer.testing import CliRunner

from thunderline.convert import (
    ConvertUnavailableError,
    NotAKerasModelError,
    UnsupportedLayerError,
    check_archive,
    convert_keras,
    import_keras,
)
from thunderline.ml import ModelRegistry
from thunderline.ml.cli import models_app
from thunderline.ml.trust import verify_checksums, verify_signature

WIDE = {"COLUMNS": "400"}


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(models_app, list(args), env=WIDE)
    return result.exit_code, result.output


def test_convert_writes_a_checked_onnx_model(
    keras: ModuleType, keras_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "small_model"
    summary = convert_keras(keras_file, out, opset=13, labels=["a", "b", "c"])
    assert summary.name == "small_model" and summary.opset == 13
    assert [t.name for t in summary.inputs] == ["pixels"]
    assert [t.name for t in summary.outputs] == ["probabilities"]
    assert summary.inputs[0].shape == (None, 8, 8, 1) and summary.outputs[0].shape == (None, 3)
    assert summary.nodes > 0 and summary.parameters == 4 * 9 + 4 + 4 * 3 + 3
    proto = onnx.load_model(str(out / "onnx" / "model.onnx"))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {p.key: p.value for p in proto.metadata_props}["labels"] == '["a", "b", "c"]'
    assert (out / "keras" / "model.keras").read_bytes() == keras_file.read_bytes()
    model = keras.saving.load_model(keras_file)
    x = np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)
    session = ort.InferenceSession(str(out / "onnx" / "model.onnx"))
    got = session.run(["probabilities"], {"pixels": x})[0]
    np.testing.assert_allclose(got, np.asarray(model(x)), atol=1e-5)


def test_convert_command_validates_and_signs_a_loadable_folder(
    keras: ModuleType, keras_file: Path, tmp_path: Path
) -> None:
    registry_dir = tmp_path / "models"
    out = registry_dir / "small"
    private, public = throwaway_key(tmp_path / "keys")
    code, output = _invoke(
        "convert", str(keras_file), "--out", str(out), "--name", "small", "--key", str(private)
    )
    assert code == 0, output
    assert "nodes" in output and "parameters" in output and "opset 17" in output
    assert "PASS" in output
    report = json.loads((out / "VAL_REPORT.json").read_text())
    assert report["status"] == "PASS" and report["model"] == "small"
    assert verify_checksums(out) >= 3
    verify_signature(out, public)
    digest = __import__("hashlib").sha256((out / "onnx" / "model.onnx").read_bytes()).hexdigest()
    (registry_dir / "registry.toml").write_text(
        f'[[models]]\nname = "small"\npath = "small/onnx/model.onnx"\nsha256 = "{digest}"\n'
    )
    model = ModelRegistry(registry_dir, public_key=public).get_model("small")
    assert model.infer(np.zeros((2, 8, 8, 1), np.float32))["probabilities"].shape == (2, 3)


def test_truncated_keras_file_is_a_clear_error(keras_file: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(keras_file.read_bytes()[: keras_file.stat().st_size // 2])
    with pytest.raises(NotAKerasModelError, match=str(truncated)):
        check_archive(truncated)
    code, output = _invoke("convert", str(truncated), "--out", str(tmp_path / "out"))
    assert code == 2 and str(truncated) in output and "Traceback" not in output
    assert "not a Keras model file" in output
    assert not (tmp_path / "out" / "onnx" / "model.onnx").exists()


@pytest.mark.parametrize("kind", ["missing", "folder", "text", "zip"])
def test_not_a_keras_file_exits_2_naming_it(tmp_path: Path, kind: str) -> None:
    import zipfile

    path = tmp_path / f"{kind}.keras"
    if kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("hello, not a model")
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "a zip, not a Keras model")
    code, output = _invoke("convert", str(path), "--out", str(tmp_path / "out"))
    assert code == 2, output
    assert str(path) in output and "Traceback" not in output
    assert ("not a file" if kind in {"missing", "folder"} else "not a Keras model") in output


def test_custom_layer_is_unsupported(custom_layer_file: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedLayerError, match="Doubler"):
        convert_keras(custom_layer_file, tmp_path / "out")
    code, output = _invoke("convert", str(custom_layer_file), "--out", str(tmp_path / "out2"))
    assert code == 2 and str(custom_layer_file) in output and "unsupported layer" in output
    assert "Traceback" not in output
    assert not (tmp_path / "out" / "onnx" / "model.onnx").exists()


def test_missing_tensorflow_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keras", None)  # what `import keras` sees without the extra
    with pytest.raises(ConvertUnavailableError, match="convert` extra"):
        import_keras()
