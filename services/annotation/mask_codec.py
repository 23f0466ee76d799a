"""Masks in and out: PNG of class indices or run-length JSON, validated against the image. No I/O."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from services.annotation.errors import InvalidMask

Mask = NDArray[np.uint8]
__all__ = ["InvalidMask", "Mask", "decode_png", "decode_rle", "encode_png", "validate"]


def decode_png(data: bytes) -> Mask:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidMask("mask is not a readable PNG") from None
    if image.mode not in ("L", "P", "I;16", "I"):
        raise InvalidMask(f"mask PNG must be single-channel class indices, got mode {image.mode}")
    array = np.asarray(image)
    if array.max(initial=0) > 255:
        raise InvalidMask("mask values above 255 are not class indices")
    return array.astype(np.uint8)


def decode_rle(body: dict[str, Any]) -> Mask:
    """``{"encoding": "rle", "size": [h, w], "runs": [[class, count], ...]}`` in row-major order."""
    try:
        height, width = (int(v) for v in body["size"])
        runs = [(int(value), int(count)) for value, count in body["runs"]]
    except (KeyError, TypeError, ValueError):
        raise InvalidMask("RLE mask needs size [h, w] and runs [[class, count], ...]") from None
    if body.get("encoding") != "rle":
        raise InvalidMask("only the 'rle' JSON encoding is accepted")
    if height < 1 or width < 1 or any(count < 0 or not 0 <= value <= 255 for value, count in runs):
        raise InvalidMask("RLE mask has a non-positive size, a negative run or a class outside 0..255")
    total = sum(count for _, count in runs)
    if total != height * width:
        raise InvalidMask(f"RLE runs cover {total} pixels, the size {height}x{width} needs {height * width}")
    values = np.repeat(np.array([v for v, _ in runs], dtype=np.uint8), [c for _, c in runs])
    return values.reshape(height, width)


def validate(mask: Mask, *, width: int, height: int, num_classes: int) -> None:
    if mask.shape != (height, width):
        raise InvalidMask(f"mask is {mask.shape[1]}x{mask.shape[0]}, the image is {width}x{height}")
    unknown = sorted(int(v) for v in np.unique(mask) if v >= num_classes)
    if unknown:
        raise InvalidMask(f"mask has class values {unknown[:10]} outside 0..{num_classes - 1}")


def encode_png(mask: Mask) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask, mode="L").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()
