"""``thunderline models validate``: Keras vs ONNX Runtime on seeded and held-out vectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
from onnx import numpy_helper
from tests.unit.ml._helpers import REAL_MODELS
from typer.testing import CliRunner

from thunderline.convert import validate_folder
from thunderline.ml.cli import models_app
from thunderline.ml.trust import verify_checksums

REQUIRED = {
    "model", "max_abs_diff", "mean_abs_diff", "top1_agreement", "tolerance", "status",
    "vectors", "keras_version", "tensorflow_version", "onnx_version", "onnxruntime_version",
    "opset", "timestamp",
}  # fmt: skip


def _copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(REAL_MODELS / name, tmp_path / name))


def test_real_text_model_passes_with_its_held_out_samples(
    keras: ModuleType, tmp_path: Path
) -> None:
    folder = _copy("text_classifier", tmp_path)
    report = validate_folder(folder)
    written = json.loads((folder / "VAL_REPORT.json").read_text())
    assert set(written) >= REQUIRED and written["status"] == "PASS"
    assert report.passed and report.tolerance == 1e-4 and report.max_abs_diff < 1e-4
    assert report.random_vectors == 64 and report.heldout_vectors > 500
    assert report.vectors == report.random_vectors + report.heldout_vectors
    assert report.heldout_accuracy_keras is not None and report.heldout_accuracy_keras > 0.9
    assert f"{report.heldout_accuracy_keras:.4f}" == f"{report.heldout_accuracy_onnx:.4f}"
    again = validate_folder(folder, report_path=tmp_path / "again.json")
    assert again.max_abs_diff == report.max_abs_diff  # seeded: the same vectors every run


def test_an_altered_weight_fails_with_exit_1(keras: ModuleType, tmp_path: Path) -> None:
    folder = _copy("image_classifier", tmp_path)
    onnx_file = folder / "onnx" / "model.onnx"
    proto = onnx.load_model(str(onnx_file))
    biggest = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights = numpy_helper.to_array(biggest).copy()
    weights.flat[0] += 0.5
    biggest.CopyFrom(numpy_helper.from_array(weights, biggest.name))
    onnx.save_model(proto, str(onnx_file))
    result = CliRunner().invoke(models_app, ["validate", str(folder)], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output
    report = json.loads((folder / "VAL_REPORT.json").read_text())
    assert report["status"] == "FAIL" and report["max_abs_diff"] > 1e-4


def test_validating_a_registered_model_into_a_report_dir_leaves_it_signed(
    keras: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    env = {"TL_ONNX_MODEL_DIR": str(REAL_MODELS), "COLUMNS": "300"}
    result = CliRunner().invoke(
        models_app, ["validate", "text_classifier", "--report-dir", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "text_classifier.VAL_REPORT.json").read_text())["status"] == "PASS"
    verify_checksums(REAL_MODELS / "text_classifier")
    unknown = CliRunner().invoke(models_app, ["validate", "nope"], env=env)
    assert unknown.exit_code == 2 and "not in the registry" in unknown.output


def test_onnx_external_data_outside_the_folder_is_refused(
    keras: ModuleType, tmp_path: Path
) -> None:
    folder = _copy("text_classifier", tmp_path)
    onnx_file = folder / "onnx" / "model.onnx"
    proto = onnx.load_model(str(onnx_file))
    biggest = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    raw = numpy_helper.to_array(biggest).tobytes()
    (tmp_path / "weights.bin").write_bytes(raw)
    biggest.ClearField("raw_data")
    biggest.ClearField("float_data")
    biggest.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (
        ("location", "../../weights.bin"),
        ("offset", "0"),
        ("length", str(len(raw))),
    ):
        entry = biggest.external_data.add()
        entry.key, entry.value = key, value
    onnx_file.write_bytes(proto.SerializeToString())
    result = CliRunner().invoke(models_app, ["validate", str(folder)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "outside" in result.output and "model.onnx" in result.output
    assert "Traceback" not in result.output
