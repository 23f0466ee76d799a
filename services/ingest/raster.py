"""Pixels to images: per frame, an 8-bit display PNG and a 16-bit training PNG, plus geometry.

Grayscale pipeline (PS3.4): stored value → Modality LUT → VOI LUT/window (LINEAR, LINEAR_EXACT,
SIGMOID, or a VOI LUT sequence) → 8 bit, MONOCHROME1 inverted after VOI. Enhanced multi-frame
images take rescale, window, spacing and plane geometry per frame from the functional groups.
The training image keeps modality values (e.g. Hounsfield units) in a 16-bit PNG with an integer
offset so negative values survive. Colour (RGB, YBR_* decoded to RGB by pydicom, PALETTE COLOR)
becomes 8-bit RGB. Frames are decoded one at a time. Pure functions: no I/O.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array

FRAME_KEYWORDS = ("RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth", "VOILUTFunction")
PIXEL_DESCRIPTION = ("BitsStored", "BitsAllocated", "PixelRepresentation", "PhotometricInterpretation", "Modality")


class RasterError(ValueError):
    """The pixel data cannot be turned into images; the text names the reason."""


@dataclass(frozen=True)
class Window:
    center: float
    width: float


@dataclass(frozen=True)
class FrameGeometry:
    pixel_spacing: tuple[float, float] | None
    spacing_source: str | None
    orientation: tuple[float, ...] | None
    position: tuple[float, ...] | None


@dataclass(frozen=True)
class RasterFrame:
    frame: int
    width: int
    height: int
    display_png: bytes
    training_png: bytes
    training_offset: int
    window: Window | None
    geometry: FrameGeometry


def frame_count(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames", 1) or 1)


def rasterise(ds: Dataset, *, preset: Window | None = None, png_compression: int = 1) -> list[RasterFrame]:
    """Every frame of ``ds`` as PNGs; ``preset`` (the project's window) wins over the file's. Raises RasterError."""
    frames: list[RasterFrame] = []
    count = frame_count(ds)
    for index in range(count):
        try:
            stored = pixel_array(ds, index=index) if count > 1 else pixel_array(ds)
        except Exception as exc:
            syntax = ds.file_meta.get("TransferSyntaxUID")
            name = getattr(syntax, "name", "") or "unknown transfer syntax"
            raise RasterError(f"pixel data cannot be decoded ({name}: {type(exc).__name__})") from None
        try:
            frames.append(_frame(ds, index, stored, preset, png_compression))
        except RasterError:
            raise
        except Exception as exc:  # inconsistent LUT or window attributes
            raise RasterError(f"pixel values cannot be mapped to an image ({type(exc).__name__})") from None
    return frames


def frame_attributes(ds: Dataset, index: int) -> Dataset:
    """The top-level view of frame ``index``: rescale and window from the functional groups if present."""
    view = Dataset()
    for keyword in PIXEL_DESCRIPTION + FRAME_KEYWORDS:
        if keyword in ds:
            setattr(view, keyword, ds[keyword].value)
    for keyword in ("VOILUTSequence", "ModalityLUTSequence"):
        if keyword in ds:
            setattr(view, keyword, ds[keyword].value)
    for group in _functional_groups(ds, index):
        for sequence in ("PixelValueTransformationSequence", "FrameVOILUTSequence"):
            for item in group.get(sequence, None) or []:
                for keyword in FRAME_KEYWORDS:
                    if keyword in item:
                        setattr(view, keyword, item[keyword].value)
    return view


def frame_geometry(ds: Dataset, index: int) -> FrameGeometry:
    spacing, source = _first_spacing(ds)
    orientation = _floats(ds.get("ImageOrientationPatient"))
    position = _floats(ds.get("ImagePositionPatient"))
    for group in _functional_groups(ds, index):
        for item in group.get("PixelMeasuresSequence", None) or []:
            if "PixelSpacing" in item:
                spacing, source = _floats(item.PixelSpacing), "PixelMeasuresSequence"
        for item in group.get("PlaneOrientationSequence", None) or []:
            orientation = _floats(item.get("ImageOrientationPatient")) or orientation
        for item in group.get("PlanePositionSequence", None) or []:
            position = _floats(item.get("ImagePositionPatient")) or position
    pair = (spacing[0], spacing[1]) if spacing and len(spacing) >= 2 else None
    return FrameGeometry(pair, source if pair else None, orientation, position)


def _functional_groups(ds: Dataset, index: int) -> list[Dataset]:
    """Shared first, then per-frame, so per-frame values win."""
    groups: list[Dataset] = []
    shared = ds.get("SharedFunctionalGroupsSequence", None)
    if shared:
        groups.append(shared[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", None)
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    return groups


def _first_spacing(ds: Dataset) -> tuple[tuple[float, ...] | None, str | None]:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        values = _floats(ds.get(keyword))
        if values:
            return values, keyword
    return None, None


def _floats(element: object) -> tuple[float, ...] | None:
    value = getattr(element, "value", element)
    if value is None or value == "":
        return None
    items: list[object] = [value] if isinstance(value, (str, bytes, int, float)) else list(value)  # type: ignore[call-overload]
    try:
        return tuple(float(v) for v in items)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _frame(ds: Dataset, index: int, stored: np.ndarray, preset: Window | None, level: int) -> RasterFrame:
    geometry = frame_geometry(ds, index)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(stored, ds)
        if rgb.dtype != np.uint8:
            rgb = (rgb >> 8).astype(np.uint8)
        return _colour_frame(index, rgb, level, geometry)
    if stored.ndim == 3 and stored.shape[-1] == 3:
        bits = int(ds.get("BitsStored", 8) or 8)
        return _colour_frame(index, _colour_to_uint8(stored, bits), level, geometry)
    if stored.ndim != 2:
        raise RasterError(f"unexpected frame shape {stored.shape}")
    view = frame_attributes(ds, index)
    lut_source = ds if "ModalityLUTSequence" in ds else view  # LUT data needs the file's encoding
    modality = np.asarray(apply_modality_lut(stored, lut_source), dtype=np.float64)
    display, window = _display(view, modality, preset)
    if photometric == "MONOCHROME1" and str(ds.get("PresentationLUTShape", "")).upper() != "INVERSE":
        display = 255 - display
    rounded = np.rint(modality)
    low = float(rounded.min()) if rounded.size else 0.0
    offset = int(-low) if low < 0 else 0
    shifted = rounded + offset
    if shifted.size and shifted.max() > 65535:
        raise RasterError("modality values exceed the 16-bit training range")
    height, width = stored.shape
    return RasterFrame(
        frame=index,
        width=width,
        height=height,
        display_png=_png(display.astype(np.uint8), level),
        training_png=_png(shifted.astype(np.uint16), level),
        training_offset=offset,
        window=window,
        geometry=geometry,
    )


def _display(view: Dataset, modality: np.ndarray, preset: Window | None) -> tuple[np.ndarray, Window | None]:
    if preset is not None:
        return _linear(modality, preset), preset
    if "VOILUTSequence" in view:
        try:
            voi = np.asarray(apply_voi_lut(modality, view, index=0), dtype=np.float64)
            bits = int(view.VOILUTSequence[0].LUTDescriptor[2])
            return _scale(voi, 0.0, float(2**bits - 1)), None
        except (ValueError, TypeError, AttributeError, IndexError):
            pass
    window = _file_window(view)
    if window is not None:
        try:
            voi = np.asarray(apply_voi_lut(modality, view, index=0, prefer_lut=False), dtype=np.float64)
            low, high = _voi_range(view)
            return _scale(voi, low, high), window
        except (ValueError, TypeError, AttributeError):
            pass  # an unusable window falls back to the frame's own range
    if not modality.size:
        return np.zeros(modality.shape, dtype=np.uint8), None
    return _scale(modality, float(modality.min()), float(modality.max())), None


def _file_window(view: Dataset) -> Window | None:
    if "WindowCenter" not in view or "WindowWidth" not in view:
        return None
    centers, widths = _floats(view["WindowCenter"]), _floats(view["WindowWidth"])
    if not centers or not widths or widths[0] <= 0:
        return None
    return Window(centers[0], widths[0])


def _linear(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR window straight to 0..255."""
    center, width = window.center, max(window.width, 1.0)
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0 if width > 1 else (values > center) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _voi_range(view: Dataset) -> tuple[float, float]:
    """The output range of the window (PS3.3 C.11.2.1.2): y_min..y_max of the stored bit depth."""
    bits = int(view.get("BitsStored", 8) or 8)
    signed = int(view.get("PixelRepresentation", 0) or 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope = float(view.get("RescaleSlope", 1) or 1)
    intercept = float(view.get("RescaleIntercept", 0) or 0)
    ends = (low * slope + intercept, high * slope + intercept)
    return min(ends), max(ends)


def _scale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _colour_to_uint8(values: np.ndarray, bits: int) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
    return _scale(values.astype(np.float64), 0.0, float(2 ** min(max(bits, 1), 16) - 1))


def _colour_frame(index: int, rgb: np.ndarray, level: int, geometry: FrameGeometry) -> RasterFrame:
    png = _png(rgb.astype(np.uint8), level)
    height, width = rgb.shape[:2]
    return RasterFrame(index, width, height, png, png, 0, None, geometry)


def _png(array: np.ndarray, level: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()
