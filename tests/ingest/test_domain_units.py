"""Ingest's pure modules: parsing refusals, de-identification, rasterisation."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from services.ingest.deid import deidentify, encode_dataset, pseudonymous_uid
from services.ingest.parsing import RefusedInstance, read_dicom
from services.ingest.raster import rasterise

SECRET = b"test-secret"
LIMIT = 1024**3
CANARY = "CANARY7Q"


def bundled(name: str) -> bytes:
    return Path(str(get_testdata_file(name))).read_bytes()


def with_canaries(ds: Dataset) -> Dataset:
    ds.PatientName = f"{CANARY}^Jane"
    ds.PatientID = f"{CANARY}-ID"
    ds.PatientBirthDate = "19700101"
    ds.InstitutionName = f"{CANARY} General Hospital"
    ds.ReferringPhysicianName = f"Dr^{CANARY}"
    ds.StudyDescription = f"chest for {CANARY}"
    ds.AccessionNumber = f"{CANARY}A1"
    item = Dataset()
    item.PersonName = f"{CANARY}^Nested"
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ds.ReferencedImageSequence = Sequence([item])
    block = ds.private_block(0x0009, "CANARY CREATOR", create=True)
    block.add_new(0x01, "LO", f"{CANARY} private")
    return ds


def test_no_canary_survives_deidentification() -> None:
    source = with_canaries(pydicom.dcmread(io.BytesIO(bundled("CT_small.dcm"))))
    original_uids = {str(source.StudyInstanceUID), str(source.SeriesInstanceUID), str(source.SOPInstanceUID)}
    result = deidentify(source, secret=SECRET, project="p1")
    encoded = encode_dataset(result.dataset)
    assert CANARY.encode() not in encoded
    assert b"19700101" not in encoded
    for uid in original_uids:
        assert uid.encode() not in encoded
    clean = pydicom.dcmread(io.BytesIO(encoded))
    assert clean.PatientIdentityRemoved == "YES"
    assert clean.LongitudinalTemporalInformationModified == "MODIFIED"
    assert [item.CodeValue for item in clean.DeidentificationMethodCodeSequence] == ["113100", "113107"]
    assert clean.SOPInstanceUID == clean.file_meta.MediaStorageSOPInstanceUID == result.sop_uid
    assert not any(element.tag.is_private for element in clean)
    assert np.array_equal(clean.pixel_array, source.pixel_array)


def test_pseudonymous_uids_are_stable_per_project_and_valid() -> None:
    a = deidentify(pydicom.dcmread(io.BytesIO(bundled("CT_small.dcm"))), secret=SECRET, project="p1")
    b = deidentify(pydicom.dcmread(io.BytesIO(bundled("CT_small.dcm"))), secret=SECRET, project="p1")
    c = deidentify(pydicom.dcmread(io.BytesIO(bundled("CT_small.dcm"))), secret=SECRET, project="p2")
    assert (a.study_uid, a.series_uid, a.sop_uid) == (b.study_uid, b.series_uid, b.sop_uid)
    assert a.study_uid != c.study_uid and a.patient_pseudo_id != c.patient_pseudo_id
    uid = pseudonymous_uid(SECRET, "p1", "1.2.3")
    assert uid.startswith("2.25.") and len(uid) <= 64 and uid[5:].isdigit()
    assert pseudonymous_uid(b"other-key", "p1", "1.2.3") != uid


def test_ct_rasterises_to_display_and_lossless_training_png() -> None:
    ds = pydicom.dcmread(io.BytesIO(bundled("CT_small.dcm")))
    (frame,) = rasterise(ds)
    display = np.asarray(Image.open(io.BytesIO(frame.display_png)))
    training = np.asarray(Image.open(io.BytesIO(frame.training_png))).astype(np.int64)
    assert display.shape == (128, 128) and display.dtype == np.uint8
    assert display.min() < 30 and display.max() > 200  # uses the grey range
    hounsfield = ds.pixel_array.astype(np.int64) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    assert np.array_equal(training - frame.training_offset, hounsfield)


def test_monochrome1_is_inverted() -> None:
    ds = pydicom.dcmread(io.BytesIO(bundled("CT_small.dcm")))
    (normal,) = rasterise(ds)
    ds.PhotometricInterpretation = "MONOCHROME1"
    (inverted,) = rasterise(ds)
    a = np.asarray(Image.open(io.BytesIO(normal.display_png))).astype(int)
    b = np.asarray(Image.open(io.BytesIO(inverted.display_png))).astype(int)
    assert np.array_equal(a, 255 - b)


@pytest.mark.parametrize(
    "name, frames",
    [("SC_rgb_rle_2frame.dcm", 2), ("examples_palette.dcm", 1), ("MR_small_RLE.dcm", 1), ("JPEG2000.dcm", 1)],
)
def test_colour_multiframe_and_compressed(name: str, frames: int) -> None:
    ds = read_dicom(bundled(name), max_pixel_bytes=LIMIT)
    result = rasterise(ds)
    assert len(result) == frames
    image = Image.open(io.BytesIO(result[0].display_png))
    assert image.size == (int(ds.Columns), int(ds.Rows))


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"hello, this is text", "not a DICOM file"),
        (Image.new("L", (8, 8)).tobytes() * 4, "not a DICOM file"),
        (bundled("rtplan.dcm"), "no pixel data"),
        (bundled("test-SR.dcm"), "no pixel data"),
    ],
)
def test_refusals_name_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(RefusedInstance, match=reason):
        read_dicom(data, max_pixel_bytes=LIMIT)


def test_absurd_dimensions_are_refused_from_the_header() -> None:
    ds = pydicom.dcmread(io.BytesIO(bundled("CT_small.dcm")))
    ds.Rows = ds.Columns = 16000
    ds.NumberOfFrames = 1000
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(RefusedInstance, match="over the limit"):
        read_dicom(buffer.getvalue(), max_pixel_bytes=LIMIT)


def test_truncated_file_is_refused() -> None:
    data = bundled("CT_small.dcm")
    with pytest.raises(RefusedInstance):
        ds = read_dicom(data[:2000], max_pixel_bytes=LIMIT)
        rasterise(ds)
