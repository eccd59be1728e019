"""Turn payload bytes into a model's input, by content and by the registry entry.

Images are decoded with Pillow (decompression bombs refused), converted to RGB, resized so the
shorter side fits the model and centre-cropped, scaled to [0, 1], standardised with the entry's
``mean``/``std`` and laid out as the entry's ``layout`` (``NCHW`` or ``NHWC``). A model with one
channel (the Fashion-MNIST classifier: ``[batch, 28, 28, 1]``) gets grayscale (ITU-R 601-2
luma); with ``background = "dark"`` in its entry (trained on light objects on black) an image
whose border is mostly light is inverted first, so a photo on white matches. Text is
tokenised as the entry declares (``utf8_bytes``: UTF-8 bytes as ids, zero padded / truncated
to the sequence length).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from thunderline.ml.errors import PreprocessError
from thunderline.ml.registry import ModelEntry
from thunderline.ml.tensors import ModelInput, cast_to_float32, nhwc_to_nchw, standardize

#: Refuse images with more pixels than this (Pillow's own bomb limit is 2x89M).
MAX_IMAGE_PIXELS = 64_000_000


def image_channels(entry: ModelEntry) -> int:
    """Channels the model expects (1 = grayscale, 3 = RGB), from the input shape and layout."""
    shape = entry.input_shape
    channels = shape[1] if entry.layout == "NCHW" else shape[-1]
    if channels not in (1, 3):
        raise PreprocessError(f"model {entry.name}: image channels must be 1 or 3: {shape}")
    return int(channels)


def image_size(entry: ModelEntry) -> tuple[int, int]:
    """(height, width) the model expects, from the entry's input shape and layout."""
    shape = entry.input_shape
    if len(shape) != 4:
        raise PreprocessError(f"model {entry.name}: image input_shape must be rank 4: {shape}")
    h, w = (shape[2], shape[3]) if entry.layout == "NCHW" else (shape[1], shape[2])
    if not isinstance(h, int) or not isinstance(w, int):
        raise PreprocessError(f"model {entry.name}: image height/width must be fixed: {shape}")
    return h, w


def decode_image(data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode image bytes to an RGB Pillow image.

    Raises:
        PreprocessError: undecodable bytes, or more than ``max_pixels`` pixels.
    """
    img: Image.Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
            img = opened
            if img.width * img.height > max_pixels:
                raise PreprocessError(
                    f"image of {img.width}x{img.height} pixels is over the {max_pixels} limit"
                )
            opened.draft("RGB", (opened.width, opened.height))
            opened.load()
    except PreprocessError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PreprocessError(f"image refused as a decompression bomb: {exc}") from exc
    except Exception as exc:  # UnidentifiedImageError, OSError, SyntaxError, ...
        raise PreprocessError(f"cannot decode image: {type(exc).__name__}: {exc}") from exc
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    if img.mode != "RGB":
        if img.mode in ("RGBA", "LA", "P"):
            rgba = img.convert("RGBA")
            background = Image.new("RGB", rgba.size, (255, 255, 255))
            background.paste(rgba, mask=rgba.getchannel("A"))
            img = background
        else:
            img = img.convert("RGB")
    return img


def resize_center_crop(img: Image.Image, height: int, width: int) -> Image.Image:
    """Resize so the image covers ``height`` x ``width`` (aspect kept), then centre-crop."""
    scale = max(height / img.height, width / img.width)
    new_w, new_h = max(width, round(img.width * scale)), max(height, round(img.height * scale))
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return img.crop((left, top, left + width, top + height))


def light_background(pixels: NDArray[np.uint8]) -> bool:
    """True when the one-pixel border of a grayscale image is mostly light (mean > 127)."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return bool(border.mean() > 127)


def image_tensor(data: bytes, entry: ModelEntry) -> NDArray[np.float32]:
    """Image bytes -> a batch of one in the model's layout, normalised per the entry."""
    height, width = image_size(entry)
    channels = image_channels(entry)
    img = resize_center_crop(decode_image(data), height, width)
    if channels == 1:
        gray = np.asarray(img.convert("L"), dtype=np.uint8)
        if entry.background == "dark" and light_background(gray):
            gray = 255 - gray
        pixels = gray[..., None]  # [H, W, 1]
    else:
        pixels = np.asarray(img, dtype=np.uint8)  # [H, W, 3]
    x = standardize(cast_to_float32(pixels, scale=1.0 / 255.0), entry.mean, entry.std)
    x = x[None, ...]
    if entry.layout == "NCHW":
        return nhwc_to_nchw(x)
    return np.ascontiguousarray(x)


def utf8_byte_ids(data: bytes, seq_len: int) -> NDArray[np.int64]:
    """The ``utf8_bytes`` tokeniser: the first ``seq_len`` bytes of the text as ids 0-255.

    Invalid UTF-8 is replaced by U+FFFD; the ids are zero padded. Training (models/train_text.py)
    uses it too.
    """
    text = data.decode("utf-8", errors="replace").encode("utf-8")[:seq_len]
    ids = np.zeros(seq_len, dtype=np.int64)
    ids[: len(text)] = np.frombuffer(text, dtype=np.uint8)
    return ids


def text_tensor(data: bytes, entry: ModelEntry) -> NDArray[np.int64]:
    """Text bytes -> token ids per the entry's declared tokeniser (batch of one)."""
    if entry.tokenizer != "utf8_bytes":
        raise PreprocessError(
            f"model {entry.name}: unsupported tokenizer {entry.tokenizer!r} (utf8_bytes)"
        )
    shape = entry.input_shape
    seq_len = shape[-1] if shape and isinstance(shape[-1], int) else 256
    return utf8_byte_ids(data, seq_len)[None, :]


def payload_input(data: bytes, entry: ModelEntry) -> ModelInput:
    """The (single, unnamed) input for ``entry`` from payload bytes, by the entry's kind."""
    if entry.kind == "image":
        return ModelInput(image_tensor(data, entry))
    if entry.kind == "text":
        return ModelInput(text_tensor(data, entry))
    raise PreprocessError(f"model {entry.name}: unsupported kind {entry.kind!r}")
