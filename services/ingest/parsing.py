"""Reading an upload as DICOM and refusing what ingest cannot take, before any decoding."""

from __future__ import annotations

import io

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Rows", "Columns")


class RefusedInstance(ValueError):
    """The upload is not an image ingest can take. The text names why and never quotes values."""


def read_dicom(data: bytes, *, max_pixel_bytes: int) -> Dataset:
    if len(data) < 132 or data[128:132] != b"DICM":
        raise RefusedInstance("not a DICOM file (no DICM preamble)")
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
    except (InvalidDicomError, EOFError, ValueError, OSError, KeyError, TypeError) as exc:
        raise RefusedInstance(f"DICOM file cannot be parsed ({type(exc).__name__})") from None
    if str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS:
        raise RefusedInstance("DICOMDIR files hold no images; upload the files it lists")
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise RefusedInstance("no pixel data (not an image instance)")
    missing = [keyword for keyword in REQUIRED if not getattr(ds, keyword, None)]
    if missing:
        raise RefusedInstance(f"required attribute(s) missing: {', '.join(missing)}")
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    bits = int(getattr(ds, "BitsAllocated", 16) or 16)
    decoded = int(ds.Rows) * int(ds.Columns) * frames * samples * max(bits, 8) // 8
    if decoded > max_pixel_bytes:
        raise RefusedInstance(f"decoded pixel data would be {decoded} bytes, over the limit of {max_pixel_bytes}")
    return ds
