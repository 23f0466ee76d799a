"""Reading an upload as DICOM and refusing what ingest cannot take, before any decoding.

Every refusal carries a machine code and a message that never quotes a value from the file.
pydicom reads many broken files silently, so this module checks what pydicom does not: the DICM
prefix (force mode is never used), element values shorter than their declared length, native pixel
data shorter than the header implies, required UIDs, the transfer syntax and whether a decoder for
it is installed, and the decoded size computed from the header (compressed decoders allocate the
whole output before decoding).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
REQUIRED_IMAGE = ("Rows", "Columns", "BitsAllocated")
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
UNDEFINED_LENGTH = 0xFFFFFFFF
MAX_SIDE = 16384
MAX_FRAMES = 10000
JPEG_EXTENDED_12BIT = "1.2.840.10008.1.2.4.51"
VIDEO_SYNTAX_PREFIXES = ("1.2.840.10008.1.2.4.10", "1.2.840.10008.1.2.4.11")


class RefusedInstance(ValueError):
    """The upload is not an image ingest can take. The text names why and never quotes values."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PixelGeometry:
    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int

    @property
    def decoded_bytes(self) -> int:
        return self.rows * self.columns * self.frames * self.samples * max(self.bits_allocated, 8) // 8


def looks_like_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def read_dicom(data: bytes, *, max_pixel_bytes: int) -> Dataset:
    """The parsed dataset of one Part-10 file, or :class:`RefusedInstance`."""
    if not looks_like_dicom(data):
        raise RefusedInstance("not_dicom", "not a DICOM file (no DICM prefix at offset 128)")
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
    except (InvalidDicomError, EOFError, ValueError, OSError, KeyError, TypeError, IndexError) as exc:
        raise RefusedInstance("unreadable", f"DICOM file cannot be parsed ({type(exc).__name__})") from None
    try:
        return _checked(ds, max_pixel_bytes)
    except RefusedInstance:
        raise
    except Exception as exc:  # pydicom raises many types on malformed headers
        raise RefusedInstance("unreadable", f"DICOM header cannot be interpreted ({type(exc).__name__})") from None


def _checked(ds: Dataset, max_pixel_bytes: int) -> Dataset:
    _refuse_truncated(ds)
    meta_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "") or "")
    if meta_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise RefusedInstance("dicomdir", "DICOMDIR files hold no images; upload the files it lists")
    if "TransferSyntaxUID" not in ds.file_meta:
        raise RefusedInstance("no_transfer_syntax", "the file meta information has no transfer syntax")
    missing = [keyword for keyword in REQUIRED_UIDS if not str(ds.get(keyword, "") or "").strip()]
    if missing:
        raise RefusedInstance("missing_required", f"required attribute(s) missing: {', '.join(missing)}")
    if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
        kind = UID(str(ds.SOPClassUID)).name
        raise RefusedInstance("no_pixel_data", f"no pixel data in this {_safe_class_name(kind)} instance")
    missing = [keyword for keyword in REQUIRED_IMAGE if ds.get(keyword) in (None, "")]
    if missing:
        raise RefusedInstance("missing_required", f"required image attribute(s) missing: {', '.join(missing)}")
    geometry = pixel_geometry(ds)
    refuse_absurd(geometry, max_pixel_bytes)
    refuse_undecodable(ds)
    _refuse_short_native_pixels(ds)
    return ds


def pixel_geometry(ds: Dataset) -> PixelGeometry:
    try:
        return PixelGeometry(
            rows=int(ds.Rows),
            columns=int(ds.Columns),
            frames=int(ds.get("NumberOfFrames", 1) or 1),
            samples=int(ds.get("SamplesPerPixel", 1) or 1),
            bits_allocated=int(ds.BitsAllocated),
        )
    except (TypeError, ValueError):
        raise RefusedInstance("bad_image_header", "image dimensions are not numbers") from None


def refuse_absurd(geometry: PixelGeometry, max_pixel_bytes: int) -> None:
    if min(geometry.rows, geometry.columns, geometry.frames, geometry.samples, geometry.bits_allocated) < 1:
        raise RefusedInstance("bad_image_header", "image dimensions must be positive")
    if geometry.rows > MAX_SIDE or geometry.columns > MAX_SIDE:
        raise RefusedInstance("absurd_dimensions", f"frame sides over {MAX_SIDE} pixels")
    if geometry.frames > MAX_FRAMES or geometry.samples not in (1, 3) or geometry.bits_allocated > 64:
        raise RefusedInstance("absurd_dimensions", "frame count, samples per pixel or bits allocated out of range")
    if geometry.decoded_bytes > max_pixel_bytes:
        raise RefusedInstance(
            "absurd_dimensions",
            f"decoded pixel data would be {geometry.decoded_bytes} bytes, over the limit of {max_pixel_bytes}",
        )


def refuse_undecodable(ds: Dataset) -> None:
    syntax = UID(str(ds.file_meta.TransferSyntaxUID))
    if "PixelData" not in ds:
        return
    if str(syntax).startswith(VIDEO_SYNTAX_PREFIXES):
        raise RefusedInstance("unsupported_transfer_syntax", f"video transfer syntax ({syntax.name}) is not rasterised")
    if str(syntax) == JPEG_EXTENDED_12BIT and int(ds.get("BitsStored", 8) or 8) > 8:
        raise RefusedInstance(
            "unsupported_transfer_syntax",
            "12-bit lossy JPEG needs a GPL-licensed decoder that medal does not ship (docs/adr/0006)",
        )
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise RefusedInstance("unsupported_transfer_syntax", f"no decoder for {syntax.name or 'this syntax'}") from None
    if not decoder.is_available:
        raise RefusedInstance("unsupported_transfer_syntax", f"no installed decoder for {syntax.name}")


def _refuse_truncated(ds: Dataset) -> None:
    for container in (ds.file_meta, ds):
        for raw in container._dict.values():
            length = getattr(raw, "length", None)
            value = getattr(raw, "value", None)
            if isinstance(value, bytes) and length not in (None, UNDEFINED_LENGTH) and len(value) < length:
                raise RefusedInstance("truncated", "an element is shorter than its declared length (cut-off file)")


def _refuse_short_native_pixels(ds: Dataset) -> None:
    if "PixelData" not in ds or UID(str(ds.file_meta.TransferSyntaxUID)).is_compressed:
        return
    try:
        expected = get_expected_length(ds, "bytes")
    except (AttributeError, TypeError, ValueError, KeyError):
        raise RefusedInstance("bad_image_header", "pixel description attributes are inconsistent") from None
    if len(ds.PixelData) < expected:
        raise RefusedInstance("truncated", "pixel data is shorter than the image header requires (cut-off file)")


def _safe_class_name(name: str) -> str:
    """SOP class names come from pydicom's dictionary, never from the file; unknown ones stay generic."""
    return name if name and not name[0].isdigit() else "this SOP class"
