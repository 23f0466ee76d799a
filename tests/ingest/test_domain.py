"""Ingest's pure modules: burned-in triage, zip member names, per-frame geometry, header refusals."""

from __future__ import annotations

import io

import pydicom
import pytest

from services.ingest.archive import unsafe_name
from services.ingest.parsing import RefusedInstance, read_dicom
from services.ingest.raster import frame_attributes, frame_geometry, rasterise
from services.ingest.triage import quarantine_reason
from tests.ingest.conftest import ct_dataset, encode, samples_dir


@pytest.mark.parametrize(
    "attributes, quarantined",
    [
        ({}, False),
        ({"BurnedInAnnotation": "YES"}, True),
        ({"Modality": "US"}, True),
        ({"Modality": "US", "BurnedInAnnotation": "NO"}, False),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, True),
        ({"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]}, True),
        ({"ImageType": ["DERIVED", "SECONDARY", "AXIAL"]}, False),  # a CT reformat
        ({"Modality": "DX", "ImageType": ["DERIVED", "SECONDARY"]}, True),
        ({"SeriesDescription": "Dose Report"}, True),
    ],
)
def test_burned_in_triage(attributes: dict[str, object], quarantined: bool) -> None:
    ds = ct_dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    reason = quarantine_reason(ds)
    assert (reason is not None) == quarantined
    assert reason is None or "Dose" not in reason  # reasons never quote values


@pytest.mark.parametrize(
    "name, unsafe",
    [
        ("study/a.dcm", False),
        ("a..b.dcm", False),
        ("../a.dcm", True),
        ("x/../../a.dcm", True),
        ("/etc/a.dcm", True),
        ("C:\\a.dcm", True),
        ("x\\..\\a.dcm", True),
        ("a\x00.dcm", True),
    ],
)
def test_unsafe_member_names(name: str, unsafe: bool) -> None:
    assert unsafe_name(name) is unsafe


def test_enhanced_ct_takes_geometry_and_window_per_frame() -> None:
    data = (samples_dir() / "pydicom-data" / "eCT_Supplemental.dcm").read_bytes()
    ds = read_dicom(data, max_pixel_bytes=1024**3)
    first, second = frame_geometry(ds, 0), frame_geometry(ds, 1)
    assert first.spacing_source == "PixelMeasuresSequence" and first.pixel_spacing == pytest.approx((0.388672,) * 2)
    assert first.position != second.position and first.orientation == second.orientation
    view = frame_attributes(ds, 1)
    assert (float(view.WindowCenter), float(view.WindowWidth), float(view.RescaleIntercept)) == (49, 102, -1024)
    frames = rasterise(ds)
    assert len(frames) == 2 and frames[1].window is not None and frames[1].window.center == 49


def test_header_refusals_name_their_code() -> None:
    ds = ct_dataset()
    del ds.StudyInstanceUID
    with pytest.raises(RefusedInstance) as missing:
        read_dicom(encode(ds), max_pixel_bytes=1024**3)
    assert missing.value.code == "missing_required" and "StudyInstanceUID" in missing.value.message
    ds = ct_dataset()
    ds.Rows = 20000
    with pytest.raises(RefusedInstance) as huge:
        read_dicom(encode(ds), max_pixel_bytes=1024**3)
    assert huge.value.code == "absurd_dimensions"
    data = encode(ct_dataset())
    cut = data[: data.index(b"\xe0\x7f\x10\x00") + 40]  # inside the pixel data element
    with pytest.raises(RefusedInstance) as truncated:
        read_dicom(cut, max_pixel_bytes=1024**3)
    assert truncated.value.code == "truncated"
    plain = pydicom.dcmread(io.BytesIO(data))
    assert plain.Rows == 128
