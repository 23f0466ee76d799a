"""Pixels to images: per frame, an 8-bit display PNG and a 16-bit training PNG.

Grayscale pipeline (PS3.4): stored value → Modality LUT → VOI LUT/window → 8 bit, MONOCHROME1
inverted after VOI. The training image keeps the modality values (e.g. Hounsfield units) in a
16-bit PNG with an integer offset so negative values survive. Colour images become RGB.
Pure functions: no I/O.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array


class RasterError(ValueError):
    """The pixel data cannot be turned into images; the text names the reason."""


@dataclass(frozen=True)
class RasterFrame:
    frame: int
    width: int
    height: int
    display_png: bytes
    training_png: bytes
    training_offset: int


def frame_count(ds: Dataset) -> int:
    return int(getattr(ds, "NumberOfFrames", 1) or 1)


def rasterise(ds: Dataset, *, png_compression: int = 1) -> list[RasterFrame]:
    """Every frame of ``ds`` as PNGs. Raises :class:`RasterError`."""
    frames: list[RasterFrame] = []
    for index in range(frame_count(ds)):
        try:
            stored = pixel_array(ds, index=index) if frame_count(ds) > 1 else pixel_array(ds)
        except Exception as exc:
            raise RasterError(f"pixel data cannot be decoded ({type(exc).__name__})") from None
        frames.append(_frame(ds, index, stored, png_compression))
    return frames


def _frame(ds: Dataset, index: int, stored: np.ndarray, level: int) -> RasterFrame:
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(stored, ds)
        if rgb.dtype != np.uint8:
            rgb = (rgb >> 8).astype(np.uint8)
        return _colour_frame(index, rgb, level)
    if stored.ndim == 3 and stored.shape[-1] == 3:
        return _colour_frame(index, _to_uint8(stored.astype(np.float64)), level)
    if stored.ndim != 2:
        raise RasterError(f"unexpected frame shape {stored.shape}")
    modality = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    display = _display(ds, stored, modality)
    if photometric == "MONOCHROME1" and str(getattr(ds, "PresentationLUTShape", "")).upper() != "INVERSE":
        display = 255 - display
    rounded = np.rint(modality)
    offset = int(-rounded.min()) if rounded.min() < 0 else 0
    shifted = rounded + offset
    if shifted.max() > 65535:
        raise RasterError("modality values exceed the 16-bit training range")
    height, width = stored.shape
    return RasterFrame(
        frame=index,
        width=width,
        height=height,
        display_png=_png(display.astype(np.uint8), level),
        training_png=_png(shifted.astype(np.uint16), level),
        training_offset=offset,
    )


def _display(ds: Dataset, stored: np.ndarray, modality: np.ndarray) -> np.ndarray:
    has_voi = "WindowCenter" in ds or "VOILUTSequence" in ds
    if has_voi:
        try:
            voi = np.asarray(apply_voi_lut(modality, ds, index=0), dtype=np.float64)
            low, high = _voi_range(ds, voi)
            return _scale(voi, low, high)
        except (ValueError, TypeError, AttributeError):
            pass  # an unusable window falls back to the frame's own range
    return _scale(modality, float(modality.min()), float(modality.max()))


def _voi_range(ds: Dataset, voi: np.ndarray) -> tuple[float, float]:
    """The output range of the window (PS3.3 C.11.2.1.2): y_min..y_max of the stored bit depth."""
    if "VOILUTSequence" in ds:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(getattr(ds, "BitsStored", 8))
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    return low * slope + intercept, high * slope + intercept


def _scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    if values.max() <= 255 and values.min() >= 0:
        return values.astype(np.uint8)
    return _scale(values, float(values.min()), float(values.max()))


def _colour_frame(index: int, rgb: np.ndarray, level: int) -> RasterFrame:
    png = _png(rgb.astype(np.uint8), level)
    height, width = rgb.shape[:2]
    return RasterFrame(index, width, height, png, png, 0)


def _png(array: np.ndarray, level: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()
