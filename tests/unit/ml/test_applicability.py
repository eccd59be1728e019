"""What a model declares it applies to (registry entry) and the reasons an artifact is not
given to it: image under the minimum size, text too short or in another language."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from thunderline.errors import ConfigError
from thunderline.ml.registry import ModelEntry, ModelRegistry
from thunderline.ml.stage import not_applicable

ROOT = Path(__file__).resolve().parents[3]


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, "PNG")
    return buffer.getvalue()


IMAGE = ModelEntry.from_dict(
    {
        "name": "img",
        "path": "img/onnx/model.onnx",
        "kind": "image",
        "input_shape": ["batch", 28, 28, 1],
        "layout": "NHWC",
        "min_width": 28,
        "min_height": 20,
        "channels": 1,
    }
)
TEXT = ModelEntry.from_dict(
    {
        "name": "txt",
        "path": "txt/onnx/model.onnx",
        "kind": "text",
        "languages": ["EN"],
        "min_bytes": 16,
        "min_confidence": 0.9,
    }
)


def test_shipped_models_declare_what_they_apply_to() -> None:
    registry = ModelRegistry(ROOT / "models")
    image = registry.entry("image_classifier")
    assert (image.min_width, image.min_height, image.channels) == (28, 28, 1)
    assert image.extra["min_confidence"] == 0.7 and len(image.labels) == 10
    text = registry.entry("text_classifier")
    assert text.languages == ("en",) and text.min_bytes == 64
    assert text.extra["min_confidence"] == 0.91 and len(text.labels) == 5
    assert text.to_dict()["languages"] == ["en"]


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        ((16, 16), "image of 16x16 pixels is under the 28x20 minimum of model img"),
        ((28, 19), "image of 28x19 pixels is under the 28x20 minimum of model img"),
        ((28, 20), None),
        ((640, 480), None),
    ],
)
def test_image_under_the_minimum_size_is_not_given_to_the_model(
    size: tuple[int, int], reason: str | None
) -> None:
    assert not_applicable(IMAGE, _png(*size)) == reason


def test_undecodable_image_is_left_to_preprocessing() -> None:
    assert not_applicable(IMAGE, b"not an image") is None


def test_text_too_short_or_in_another_language_is_not_given_to_the_model() -> None:
    prose = b"The quick brown fox jumps over the lazy dog."
    assert not_applicable(TEXT, b"  hello  \n") == (
        "text of 5 bytes is under the 16-byte minimum of model txt"
    )
    assert not_applicable(TEXT, prose) is None  # language unknown: it applies
    assert not_applicable(TEXT, prose, language="en", language_score=0.99) is None
    assert not_applicable(TEXT, prose, language="de", language_score=0.3) is None  # unsure
    assert not_applicable(TEXT, prose, language="und", language_score=0.9) is None
    assert not_applicable(TEXT, prose, language="de", language_score=0.97) == (
        "text in 'de' (score 0.97); model txt reads en"
    )


def test_declared_channels_must_match_the_input_shape() -> None:
    with pytest.raises(ConfigError, match="channels = 3 but its input_shape"):
        ModelEntry.from_dict(
            {
                "name": "bad",
                "path": "p.onnx",
                "input_shape": ["batch", 28, 28, 1],
                "layout": "NHWC",
                "channels": 3,
            }
        )
    with pytest.raises(ConfigError, match="min_width must be an integer"):
        ModelEntry.from_dict({"name": "bad", "path": "p.onnx", "min_width": -1})
