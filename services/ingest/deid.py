"""First de-identification pass: an allow-list of technical attributes, keyed pseudonymous UIDs.

Everything not on the allow-list is dropped (patient, personnel, institution, dates, free text,
private elements, sequences); study/series/instance/frame-of-reference UIDs become keyed
HMAC-SHA256 UIDs in 2.25 form, stable within a project so separate uploads stay linked. The
PS3.15 Annex E table-driven profile replaces this pass in the ingest issue; the allow-list is
stricter than that profile, never weaker. Pure functions: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

KEPT_KEYWORDS: frozenset[str] = frozenset(
    {
        "SpecificCharacterSet",
        "ImageType",
        "SOPClassUID",
        "Modality",
        "BodyPartExamined",
        "KVP",
        "SliceThickness",
        "ConvolutionKernel",
        "PatientPosition",
        "ViewPosition",
        "Laterality",
        "ImageLaterality",
        "SeriesNumber",
        "AcquisitionNumber",
        "InstanceNumber",
        "PatientOrientation",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "SliceLocation",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "PlanarConfiguration",
        "NumberOfFrames",
        "FrameIncrementPointer",
        "Rows",
        "Columns",
        "PixelSpacing",
        "ImagerPixelSpacing",
        "PixelAspectRatio",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "SmallestImagePixelValue",
        "LargestImagePixelValue",
        "WindowCenter",
        "WindowWidth",
        "VOILUTFunction",
        "RescaleIntercept",
        "RescaleSlope",
        "RescaleType",
        "ModalityLUTSequence",
        "VOILUTSequence",
        "PresentationLUTShape",
        "LossyImageCompression",
        "LossyImageCompressionRatio",
        "LossyImageCompressionMethod",
        "BurnedInAnnotation",
        "RedPaletteColorLookupTableDescriptor",
        "GreenPaletteColorLookupTableDescriptor",
        "BluePaletteColorLookupTableDescriptor",
        "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData",
        "BluePaletteColorLookupTableData",
        "SegmentedRedPaletteColorLookupTableData",
        "SegmentedGreenPaletteColorLookupTableData",
        "SegmentedBluePaletteColorLookupTableData",
        "PixelData",
        "FloatPixelData",
        "DoubleFloatPixelData",
    }
)
REMAPPED_UIDS: tuple[str, ...] = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
)
METHOD = "medal allow-list v1; keyed HMAC-SHA256 UIDs"  # LO: at most 64 characters


@dataclass(frozen=True)
class DeidentifiedInstance:
    dataset: Dataset
    study_uid: str
    series_uid: str
    sop_uid: str
    patient_pseudo_id: str
    modality: str


def pseudonymous_uid(secret: bytes, project: str, original: str) -> str:
    """A 2.25 UID (≤ 44 characters) from a keyed hash of the project and the original UID."""
    digest = hmac.new(secret, f"{project}\x00uid\x00{original}".encode(), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def pseudonymous_id(secret: bytes, project: str, kind: str, original: str) -> str:
    digest = hmac.new(secret, f"{project}\x00{kind}\x00{original}".encode(), hashlib.sha256).hexdigest()
    return digest[:20]


def deidentify(source: Dataset, *, secret: bytes, project: str) -> DeidentifiedInstance:
    """A new dataset holding only allow-listed attributes and remapped UIDs."""
    clean = Dataset()
    for element in source:
        if element.keyword in KEPT_KEYWORDS and not element.tag.is_private:
            clean.add(element)
    uids = {}
    for keyword in REMAPPED_UIDS:
        original = str(getattr(source, keyword, "") or "")
        if original:
            uids[keyword] = pseudonymous_uid(secret, project, original)
            setattr(clean, keyword, uids[keyword])
    patient = pseudonymous_id(secret, project, "patient", str(getattr(source, "PatientID", "") or ""))
    clean.PatientID = patient
    clean.PatientName = f"medal^{patient[:12]}"
    clean.StudyID = pseudonymous_id(secret, project, "study", uids.get("StudyInstanceUID", ""))[:16]
    clean.PatientIdentityRemoved = "YES"
    clean.DeidentificationMethod = METHOD
    clean.LongitudinalTemporalInformationModified = "REMOVED"

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = clean.SOPClassUID
    meta.MediaStorageSOPInstanceUID = UID(uids["SOPInstanceUID"])
    meta.TransferSyntaxUID = UID(source.file_meta.TransferSyntaxUID)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    clean.file_meta = meta
    clean.preamble = b"\x00" * 128
    return DeidentifiedInstance(
        dataset=clean,
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        sop_uid=uids["SOPInstanceUID"],
        patient_pseudo_id=patient,
        modality=str(getattr(source, "Modality", "OT") or "OT")[:16],
    )


def encode_dataset(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
