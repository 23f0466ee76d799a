"""PNG bytes to model inputs and predicted classes back to PNG: the one preprocessing of trainer, query and inference.

Rule for channels: every image becomes ONE channel. 16-bit and 8-bit grey PNGs are read as they are;
RGB (and palette, grey+alpha, RGBA) PNGs are converted to luminance (ITU-R 601-2, as PIL's "L" mode).
Members are therefore always built with ``in_channels = IN_CHANNELS = 1``, whatever a project holds.

Intensities: each image is standardised on its own (z-score: subtract its mean, divide by its
standard deviation), so CT in Hounsfield units, MR in arbitrary units and 8-bit photographs land on the
same scale. A constant image (standard deviation 0) becomes all zeros. The ingest ``offset`` (stored =
modality + offset) is subtracted first; it does not change a z-score but keeps the values honest.

Geometry: images are resized (bilinear, anti-aliased) to ``image_size`` x ``image_size`` without
keeping the aspect ratio; masks are resized with nearest-neighbour, and predicted classes are resized
back to the image's own size with nearest-neighbour (:func:`resize_classes`).
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

__all__ = ["IN_CHANNELS", "ImageDecodeError", "load_image", "load_mask", "mask_to_png", "resize_classes"]

#: Channels of every preprocessed image (see the module docstring).
IN_CHANNELS = 1

_MAX_PIXELS = 8192 * 8192


class ImageDecodeError(ValueError):
    """The bytes are not a PNG this module can read; the text says why."""


def _open(png_bytes: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(png_bytes))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageDecodeError(f"not a readable image: {exc}") from exc
    if image.width * image.height > _MAX_PIXELS or image.width < 1 or image.height < 1:
        raise ImageDecodeError(f"image of {image.width}x{image.height} pixels is out of range")
    return image


def _grey_values(image: Image.Image) -> NDArray[np.float32]:
    """(h, w) float32 grey values of a decoded image (16-bit kept, colour to luminance)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L"):
        values = np.asarray(image, dtype=np.float32)
    else:
        values = np.asarray(image.convert("L"), dtype=np.float32)
    if values.ndim != 2:
        raise ImageDecodeError(f"unsupported image mode {image.mode}")
    return values


def standardise(values: torch.Tensor) -> torch.Tensor:
    """Z-score of one image (any shape); all zeros for a constant image."""
    mean = values.mean()
    std = values.std(unbiased=False)
    centred = values - mean
    if not torch.isfinite(std) or float(std) < 1e-6:
        return torch.zeros_like(values)
    return centred / std


def load_image(png_bytes: bytes, image_size: int, offset: int = 0) -> torch.Tensor:
    """Decode, standardise and resize one image.

    Args:
        png_bytes: a 16-bit grey, 8-bit grey or RGB PNG (any format PIL reads works).
        image_size: side S of the square output.
        offset: stored value minus modality value (from ingest).

    Returns:
        (1, S, S) float32 tensor with mean 0 and standard deviation about 1.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    values = torch.from_numpy(_grey_values(_open(png_bytes)).copy()) - float(offset)
    values = standardise(values.double()).float()
    resized = F.interpolate(
        values[None, None], size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0].contiguous()


def load_mask(png_bytes: bytes, image_size: int) -> torch.Tensor:
    """Decode a PNG of class indices (pixel value = class) and resize it with nearest-neighbour.

    Returns:
        (S, S) int64 tensor of classes.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    image = _open(png_bytes)
    if image.mode not in ("L", "P", "I;16", "I;16B", "I;16L", "I", "1"):
        raise ImageDecodeError(f"a mask must be a one-channel PNG of class indices, got mode {image.mode}")
    classes = torch.from_numpy(np.asarray(image).astype(np.int64))
    if classes.ndim != 2:
        raise ImageDecodeError(f"a mask must have one channel, got shape {tuple(classes.shape)}")
    if int(classes.min()) < 0:
        raise ImageDecodeError("a mask cannot hold negative classes")
    resized = F.interpolate(classes[None, None].float(), size=(image_size, image_size), mode="nearest")
    return resized[0, 0].long()


def resize_classes(pred: torch.Tensor | NDArray[np.integer], size: tuple[int, int]) -> NDArray[np.uint8]:
    """Nearest-neighbour resize of a (H, W) class map to ``size`` = (height, width); uint8 result."""
    tensor = torch.as_tensor(np.asarray(pred) if not isinstance(pred, torch.Tensor) else pred.detach().cpu())
    if tensor.ndim != 2:
        raise ValueError(f"expected a (H, W) class map, got shape {tuple(tensor.shape)}")
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"target size must be positive, got {size}")
    resized = F.interpolate(tensor[None, None].float(), size=(height, width), mode="nearest")[0, 0]
    return resized.to(torch.uint8).numpy()


def mask_to_png(classes: NDArray[np.uint8]) -> bytes:
    """(h, w) uint8 class indices to an 8-bit grey PNG (pixel value = class)."""
    array = np.asarray(classes)
    if array.ndim != 2:
        raise ValueError(f"expected a (h, w) class map, got shape {array.shape}")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError("class indices must be within 0..255")
        array = array.astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()
