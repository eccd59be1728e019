"""Preprocessing by content: images to the model's layout and normalisation, text to ids."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from tests.unit.ml._helpers import MODELS, MODELS_KEY

from thunderline.ml import ModelRegistry, PreprocessError
from thunderline.ml.preprocess import decode_image, image_tensor, payload_input, text_tensor
from thunderline.ml.registry import ModelEntry
from thunderline.testing.samples import image_bytes

REGISTRY = ModelRegistry(MODELS, public_key=MODELS_KEY)
IMAGE = REGISTRY.entry("image_classifier")
TEXT = REGISTRY.entry("text_classifier")


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_solid_colour_is_normalised_per_channel() -> None:
    data = _png(Image.new("RGB", (300, 200), (255, 128, 0)))
    x = image_tensor(data, IMAGE)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    for channel, value in enumerate((255, 128, 0)):
        expected = (value / 255 - IMAGE.mean[channel]) / IMAGE.std[channel]
        np.testing.assert_allclose(x[0, channel], expected, rtol=1e-5)


def test_nhwc_entry_gets_channels_last() -> None:
    entry = ModelEntry(name="nhwc", path="x.onnx", input_shape=("batch", 96, 64, 3), layout="NHWC")
    x = image_tensor(image_bytes(1), entry)
    assert x.shape == (1, 96, 64, 3)


def test_modes_and_formats_decode_to_rgb() -> None:
    for img in (
        Image.new("L", (50, 40), 200),
        Image.new("RGBA", (50, 40), (10, 20, 30, 0)),
        Image.new("P", (50, 40)),
    ):
        assert decode_image(_png(img)).mode == "RGB"
    assert decode_image(image_bytes(2, fmt="JPEG")).size == (320, 240)
    transparent = image_tensor(_png(Image.new("RGBA", (50, 40), (0, 0, 0, 0))), IMAGE)
    white = image_tensor(_png(Image.new("RGB", (50, 40), (255, 255, 255))), IMAGE)
    np.testing.assert_allclose(transparent, white)  # alpha composited on white


def test_centre_crop_keeps_the_middle() -> None:
    img = Image.new("RGB", (600, 200), (0, 0, 0))
    img.paste((255, 255, 255), (200, 0, 400, 200))  # white middle third
    x = image_tensor(_png(img), IMAGE)
    white = (1.0 - IMAGE.mean[0]) / IMAGE.std[0]
    assert np.allclose(x[0, 0, :, 40:184], white, atol=1e-4)


def test_undecodable_and_oversized_images_are_preprocess_errors() -> None:
    with pytest.raises(PreprocessError, match="cannot decode image") as info:
        image_tensor(b"\x89PNG\r\n\x1a\n broken", IMAGE)
    assert info.value.reason == "preprocess" and not info.value.retryable
    with pytest.raises(PreprocessError, match="over the 100 limit"):
        decode_image(image_bytes(3), max_pixels=100)


def test_text_is_utf8_byte_ids_padded_and_truncated() -> None:
    ids = text_tensor("héllo".encode(), TEXT)
    assert ids.shape == (1, 256) and ids.dtype == np.int64
    assert ids[0, :6].tolist() == list("héllo".encode())
    assert ids[0, 6:].sum() == 0
    assert text_tensor(b"a" * 1000, TEXT)[0].tolist() == [97] * 256


def test_unsupported_tokenizer_or_kind() -> None:
    with pytest.raises(PreprocessError, match="tokenizer"):
        text_tensor(b"x", ModelEntry(name="t", path="t", kind="text", tokenizer="bpe"))
    with pytest.raises(PreprocessError, match="unsupported kind"):
        payload_input(b"x", ModelEntry(name="a", path="a", kind="audio"))
