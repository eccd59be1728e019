"""Tensor contract and normalisation helpers: shapes, dtypes and values."""

from __future__ import annotations

import numpy as np
import pytest

from thunderline.ml import (
    ModelInput,
    ModelOutput,
    cast_to_float32,
    nchw_to_nhwc,
    nhwc_to_nchw,
    softmax,
    standardize,
    top_k,
)


def test_model_input_and_output_expose_tensor_dtype_shape() -> None:
    x = np.zeros((2, 3), dtype=np.int64)
    inp = ModelInput(x, "ids")
    assert inp.name == "ids" and inp.dtype == np.int64 and inp.shape == (2, 3)
    out = ModelOutput("y", np.ones((1, 10), np.float32), {"model": "m", "version": "1"})
    assert out.shape == (1, 10) and out.dtype == np.float32
    assert out.metadata["model"] == "m"


def test_cast_to_float32_scales_pixels() -> None:
    pixels = np.array([[0, 51, 255]], dtype=np.uint8)
    out = cast_to_float32(pixels, scale=1 / 255)
    assert out.dtype == np.float32 and out.shape == (1, 3)
    np.testing.assert_allclose(out, [[0.0, 0.2, 1.0]], rtol=1e-6)


def test_cast_to_float32_bool_and_float64_and_no_copy() -> None:
    assert cast_to_float32(np.array([True, False])).tolist() == [1.0, 0.0]
    f64 = np.array([0.1, 2.5], dtype=np.float64)
    assert cast_to_float32(f64).dtype == np.float32
    f32 = np.arange(4, dtype=np.float32)
    assert cast_to_float32(f32) is f32


def test_cast_to_float32_rejects_non_numeric() -> None:
    with pytest.raises(TypeError, match="cannot cast"):
        cast_to_float32(np.array(["a", "b"]))


def test_nhwc_to_nchw_moves_channels_and_is_contiguous() -> None:
    x = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    y = nhwc_to_nchw(x)
    assert y.shape == (2, 3, 4, 5) and y.flags["C_CONTIGUOUS"]
    assert y[1, 2, 3, 4] == x[1, 3, 4, 2]
    np.testing.assert_array_equal(nchw_to_nhwc(y), x)


def test_nhwc_to_nchw_rank3_and_bad_rank() -> None:
    x = np.arange(4 * 5 * 3).reshape(4, 5, 3)
    assert nhwc_to_nchw(x).shape == (3, 4, 5)
    assert nhwc_to_nchw(x)[2, 1, 0] == x[1, 0, 2]
    with pytest.raises(ValueError, match="rank 3 or 4"):
        nhwc_to_nchw(np.zeros((3, 3)))


def test_standardize_per_channel_last_axis() -> None:
    x = np.ones((2, 2, 3), dtype=np.float32) * np.array([0.5, 0.25, 1.0], dtype=np.float32)
    out = standardize(x, mean=[0.5, 0.0, 0.5], std=[0.5, 0.25, 0.25])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.0, 1.0, 2.0])


def test_standardize_channels_first_axis() -> None:
    x = np.zeros((1, 2, 3, 3), dtype=np.float32)
    out = standardize(x, mean=[1.0, -1.0], std=[2.0, 0.5], axis=1)
    np.testing.assert_allclose(out[0, 0], -0.5)
    np.testing.assert_allclose(out[0, 1], 2.0)


def test_standardize_rejects_mismatched_or_zero_std() -> None:
    with pytest.raises(ValueError, match="channel axis has 3"):
        standardize(np.zeros((2, 3)), mean=[0, 0], std=[1, 1])
    with pytest.raises(ValueError, match="positive"):
        standardize(np.zeros((2, 3)), mean=[0, 0, 0], std=[1, 0, 1])


def test_top_k_orders_probabilities_and_softmaxes_logits() -> None:
    probs = np.array([0.1, 0.6, 0.3], dtype=np.float32)
    top = top_k(probs, ["a", "b", "c"], 2)
    assert [t["label"] for t in top] == ["b", "c"]
    assert top[0]["score"] == pytest.approx(0.6)
    logits = np.array([2.0, -1.0, 0.0, 5.0])
    top = top_k(logits, ["a", "b"], 2)
    assert [t["label"] for t in top] == ["class_3", "a"]
    assert sum(softmax(logits)) == pytest.approx(1.0)
    assert top[0]["score"] == pytest.approx(float(softmax(logits)[3]), rel=1e-5)
