"""Registry: listing, checksums verified on every load, the untrusted-model gate."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from tests.unit.ml._helpers import (
    MODELS,
    MODELS_KEY,
    sha,
    sign_with_throwaway_key,
    tamper,
    tiny_bytes,
    tiny_model,
    write_registry,
)

from thunderline.errors import ChecksumMismatch
from thunderline.ml import (
    ExternalDataEscapeError,
    ModelNotFoundError,
    ModelRegistry,
    OnnxModel,
    UntrustedModelError,
    file_sha256,
)
from thunderline.obs import metrics


def test_repository_registry_lists_models_with_matching_checksums() -> None:
    registry = ModelRegistry(MODELS, public_key=MODELS_KEY)
    names = [e.name for e in registry.list_models()]
    assert names == ["image_classifier", "image_classifier_fixed", "text_classifier"]
    entry = registry.entry("image_classifier")
    assert entry.preload and entry.input_shape == ("batch", 3, 224, 224)
    assert len(entry.labels) == 10 and entry.version == "1.0.0"
    assert all(r.status == "ok" for r in registry.verify())
    for e in registry.list_models():
        assert file_sha256(MODELS / e.path) == e.sha256


def test_get_model_loads_and_round_trips() -> None:
    model = ModelRegistry(MODELS, public_key=MODELS_KEY).get_model("image_classifier")
    out = model.infer(model.spec.dummy_inputs(1))["probabilities"]
    assert out.shape == (1, 10)
    assert np.isclose(out.sum(), 1.0, atol=1e-4)
    assert out.max() > 0.2  # not uniform


def test_unknown_model_and_missing_file(model_copy: Path) -> None:
    registry = ModelRegistry(model_copy, public_key=MODELS_KEY)
    with pytest.raises(ModelNotFoundError, match="not in the registry"):
        registry.get_model("nope")
    (model_copy / "text_classifier" / "onnx" / "text_classifier.onnx").unlink()
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        registry.get_model("text_classifier")
    assert {r.name: r.status for r in registry.verify()}["text_classifier"] == "missing"


def test_tampered_model_is_blocked_with_the_security_line(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = ModelRegistry(model_copy, public_key=MODELS_KEY)
    path = model_copy / "image_classifier" / "onnx" / "image_classifier.onnx"
    expected = registry.entry("image_classifier").sha256
    tamper(path)
    actual = file_sha256(path)
    before = metrics.sample("thunderline_ml_model_checksum_mismatch_total")
    with (
        caplog.at_level(logging.WARNING, logger="thunderline.ml"),
        pytest.raises(ChecksumMismatch) as info,
    ):
        registry.get_model("image_classifier")
    assert info.value.expected == expected and info.value.actual == actual
    line = f"[security] Model checksum mismatch: expected={expected}, actual={actual}"
    assert line in [r.getMessage() for r in caplog.records if r.name == "thunderline.ml"]
    assert metrics.sample("thunderline_ml_model_checksum_mismatch_total") == before + 1
    assert {r.name: r.status for r in registry.verify()}["image_classifier"] == "mismatch"


def test_model_outside_the_dir_is_refused_after_resolving_dotdot(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    data = tiny_bytes()
    (tmp_path / "outside.onnx").write_bytes(data)
    write_registry(folder, [{"name": "escape", "path": "../outside.onnx", "sha256": sha(data)}])
    with pytest.raises(UntrustedModelError, match="outside the model folder") as info:
        ModelRegistry(folder, public_key=MODELS_KEY).get_model("escape")
    assert info.value.reason == "untrusted_model"


def test_symlink_leading_outside_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    data = tiny_bytes()
    (tmp_path / "real.onnx").write_bytes(data)
    os.symlink(tmp_path / "real.onnx", folder / "link.onnx")
    write_registry(folder, [{"name": "link", "path": "link.onnx", "sha256": sha(data)}])
    with pytest.raises(UntrustedModelError, match="outside"):
        ModelRegistry(folder, public_key=MODELS_KEY).get_model("link")


def test_model_without_listed_checksum_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "m.onnx").write_bytes(tiny_bytes())
    write_registry(folder, [{"name": "m", "path": "m.onnx"}])
    with pytest.raises(UntrustedModelError, match="no checksum is listed"):
        ModelRegistry(folder, public_key=MODELS_KEY).get_model("m")
    with pytest.raises(UntrustedModelError):
        ModelRegistry(folder, public_key=MODELS_KEY).load_path(tmp_path / "models" / "m.onnx")


def test_untrusted_models_load_when_allowed_and_are_counted(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    data = tiny_bytes()
    (tmp_path / "outside.onnx").write_bytes(data)
    write_registry(folder, [{"name": "escape", "path": "../outside.onnx"}])
    registry = ModelRegistry(folder, public_key=MODELS_KEY, allow_untrusted=True)
    before = metrics.sample("thunderline_ml_untrusted_model_loaded_total")
    model = registry.get_model("escape")
    assert model.infer(np.zeros((1, 4), np.float32))["y"].shape == (1, 3)
    registry.load_path(tmp_path / "outside.onnx")
    assert metrics.sample("thunderline_ml_untrusted_model_loaded_total") == before + 2


def test_allowed_untrusted_model_with_wrong_checksum_is_still_blocked(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "outside.onnx").write_bytes(tiny_bytes())
    registry = ModelRegistry(folder, public_key=MODELS_KEY, allow_untrusted=True)
    with pytest.raises(ChecksumMismatch):
        registry.load_path(tmp_path / "outside.onnx", sha256="0" * 64)


def test_external_data_outside_the_folder_is_refused_before_ort(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(12, dtype=np.float32).tobytes())
    data = tiny_model(external="../secret.bin").SerializeToString()
    (folder / "ext.onnx").write_bytes(data)
    write_registry(folder, [{"name": "ext", "path": "ext.onnx", "sha256": sha(data)}])
    absolute = tiny_model(external=str(secret)).SerializeToString()
    (folder / "abs.onnx").write_bytes(absolute)
    sign_with_throwaway_key(folder)  # signed and checksummed: only the escape is wrong
    for registry in (
        ModelRegistry(folder, public_key=MODELS_KEY),
        ModelRegistry(folder, public_key=MODELS_KEY, allow_untrusted=True),
    ):
        with pytest.raises(ExternalDataEscapeError, match=r"\.\./secret\.bin") as info:
            registry.get_model("ext")
        assert info.value.reason == "external_data_escape"
    with pytest.raises(ExternalDataEscapeError):
        ModelRegistry(folder, public_key=MODELS_KEY).load_path(
            folder / "abs.onnx", sha256=sha(absolute)
        )


def test_external_data_inside_the_folder_loads(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "weights.bin").write_bytes((np.arange(12, dtype=np.float32) / 10).tobytes())
    data = tiny_model(external="weights.bin").SerializeToString()
    (folder / "ext.onnx").write_bytes(data)
    write_registry(folder, [{"name": "ext", "path": "ext.onnx", "sha256": sha(data)}])
    sign_with_throwaway_key(folder)
    model = ModelRegistry(folder, public_key=MODELS_KEY).get_model("ext")
    x = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    inline = OnnxModel.from_bytes(tiny_bytes())
    np.testing.assert_allclose(model.infer(x)["y"], inline.infer(x)["y"])
