"""Wrap a labelled data-set folder (images/<split>/*.jpg|png, masks/...) into DICOM CT studies.

Each image becomes one CT slice with synthetic patient details (names, ids, birth dates, an
institution), so the demo shows that none of it survives ingest. Pixels keep their grey values as
Hounsfield-like units: HU = 8 * grey - 1024, with a window that shows the original picture.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

SLICES_PER_STUDY = 10


@dataclass(frozen=True)
class WrappedSlice:
    split: str
    sample_id: str
    dicom: bytes
    mask_path: Path


def read_manifest(folder: Path) -> list[dict[str, str]]:
    with (folder / "manifest.csv").open() as handle:
        return list(csv.DictReader(handle))


def wrap_dataset(folder: Path, seed: int = 7) -> list[WrappedSlice]:
    rows = read_manifest(folder)
    rng = np.random.default_rng(seed)
    slices = []
    study: dict[str, str] = {}
    for number, row in enumerate(rows):
        if number % SLICES_PER_STUDY == 0:
            patient = number // SLICES_PER_STUDY
            study = {
                "name": f"Demo^Patient{patient:02d}^{rng.choice(['Ann', 'Bob', 'Eve', 'Joe'])}",
                "id": f"MRN{1000000 + int(rng.integers(0, 8999999))}",
                "birth": f"19{int(rng.integers(30, 99))}0{int(rng.integers(1, 9))}1{int(rng.integers(0, 9))}",
                "study_uid": generate_uid(),
                "series_uid": generate_uid(),
                "frame_uid": generate_uid(),
                "accession": f"ACC{int(rng.integers(100000, 999999))}",
            }
        grey = np.asarray(Image.open(folder / row["image"]).convert("L"), dtype=np.uint16)
        slices.append(WrappedSlice(row["split"], row["id"], _ct_slice(grey, study, number), folder / row["mask"]))
    return slices


def _ct_slice(grey: np.ndarray, study: dict[str, str], number: int) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study["study_uid"], study["series_uid"]
    ds.FrameOfReferenceUID = study["frame_uid"]
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = study["name"], study["id"], study["birth"]
    ds.PatientSex, ds.AccessionNumber = "O", study["accession"]
    ds.InstitutionName, ds.ReferringPhysicianName = "Demo General Hospital", "Demo^Referrer"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20200401"
    ds.StudyTime = "101500"
    ds.StudyDescription, ds.SeriesDescription = "CT CHEST (demo)", "Axial lung"
    ds.Modality, ds.BodyPartExamined, ds.ImageType = "CT", "CHEST", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "NO"
    ds.SeriesNumber, ds.InstanceNumber = 1, number % SLICES_PER_STUDY + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(number % SLICES_PER_STUDY) * 5.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 5.0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = grey.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = -4, 2040
    ds.PixelData = (grey * 8).astype("<u2").tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
