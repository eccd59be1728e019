"""Spec checks: a bad input is a ModelInputError naming expected and got, never an ORT crash."""

from __future__ import annotations

import numpy as np
import pytest
from tests.unit.ml._helpers import MODELS, tiny_bytes

from thunderline.ml import ModelInput, ModelInputError, OnnxModel


@pytest.fixture(scope="module")
def image_model() -> OnnxModel:
    return OnnxModel.from_path(
        MODELS / "image_classifier" / "onnx" / "image_classifier.onnx", name="image_classifier"
    )


@pytest.fixture(scope="module")
def pair_model() -> OnnxModel:
    return OnnxModel.from_bytes(tiny_bytes(two_inputs=True), name="pair")


def test_spec_reads_names_symbolic_dims_and_dtypes(image_model: OnnxModel) -> None:
    spec = image_model.spec
    assert spec.input_names == ["pixel_values"] and spec.output_names == ["probabilities"]
    assert spec.inputs[0].shape == ("batch", 3, 224, 224)
    assert spec.inputs[0].dtype == np.float32
    assert spec.outputs[0].shape == ("batch", 10)
    assert spec.dynamic_batch


def test_fixed_batch_model_is_not_dynamic() -> None:
    fixed = OnnxModel.from_path(
        MODELS / "image_classifier_fixed" / "onnx" / "image_classifier_fixed.onnx"
    )
    assert fixed.spec.inputs[0].shape == (1, 3, 224, 224)
    assert not fixed.spec.dynamic_batch


def test_wrong_layout_names_expected_and_got(image_model: OnnxModel) -> None:
    nhwc = np.zeros((1, 224, 224, 3), dtype=np.float32)
    with pytest.raises(ModelInputError) as info:
        image_model.infer(nhwc)
    message = str(info.value)
    assert "pixel_values" in message
    assert "float32[batch, 3, 224, 224]" in message and "float32[1, 224, 224, 3]" in message
    assert info.value.details["expected"] == "float32[batch, 3, 224, 224]"
    assert info.value.reason == "model_input" and not info.value.retryable


def test_wrong_dtype(image_model: OnnxModel) -> None:
    with pytest.raises(ModelInputError, match="expected dtype float32, got float64"):
        image_model.infer(np.zeros((1, 3, 224, 224), dtype=np.float64))


def test_wrong_rank(image_model: OnnxModel) -> None:
    with pytest.raises(ModelInputError, match=r"expected rank 4 .* got rank 3"):
        image_model.infer(np.zeros((3, 224, 224), dtype=np.float32))


def test_missing_and_unexpected_inputs(image_model: OnnxModel) -> None:
    with pytest.raises(ModelInputError, match="missing input 'pixel_values'"):
        image_model.infer({"image": np.zeros((1, 3, 224, 224), np.float32)})
    x = np.zeros((1, 3, 224, 224), np.float32)
    with pytest.raises(ModelInputError, match="unexpected input 'extra'"):
        image_model.infer({"pixel_values": x, "extra": x})


def test_empty_dimension_and_non_array(image_model: OnnxModel) -> None:
    with pytest.raises(ModelInputError, match="dimension 0 is empty"):
        image_model.infer(np.zeros((0, 3, 224, 224), np.float32))
    with pytest.raises(ModelInputError, match="expected a numpy array"):
        image_model.infer({"pixel_values": [[1.0]]})  # type: ignore[dict-item]


def test_symbolic_dimension_must_agree_across_inputs(pair_model: OnnxModel) -> None:
    x = np.zeros((2, 4), np.float32)
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ModelInputError, match="dimension 'batch' is 3 here but 2"):
        pair_model.infer({"x": x, "z": z})
    out = pair_model.infer([ModelInput(x), ModelInput(np.ones((2, 4), np.float32))])
    assert out["y"].shape == (2, 3)


def test_bare_array_needs_single_input_model(pair_model: OnnxModel) -> None:
    with pytest.raises(ModelInputError, match="single-input"):
        pair_model.infer(np.zeros((1, 4), np.float32))


def test_dummy_inputs_satisfy_the_spec(image_model: OnnxModel, pair_model: OnnxModel) -> None:
    for model in (image_model, pair_model):
        feeds = model.spec.dummy_inputs(2)
        assert model.spec.check(feeds) == 2
