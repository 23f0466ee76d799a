"""NIfTI and DICOM SEG exports (the formats radiology tools read)."""

from __future__ import annotations

import gzip
import io
import logging
import uuid
from dataclasses import dataclass

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from medal.storage import ObjectStore
from services.annotation import mask_codec
from services.annotation.exports import ExportItem, Sink, decode_image
from services.annotation.settings import ProjectSettings

log = logging.getLogger("medal.annotation.export")
SEG_SERIES_NUMBER = 900
SEG_NAMESPACE = uuid.UUID("5d0c1c4e-8a9b-4f6e-9d7a-3b1f2e6c9a10")


def write_nifti(store: ObjectStore, settings: ProjectSettings, items: list[ExportItem], sink: Sink) -> list[str]:
    """images/<split>/<id>.nii.gz (modality values, or RGB) and masks/<split>/<id>.nii.gz (class indices)."""
    for item in items:
        assert item.mask_key is not None
        pixels = decode_image(store.get(item.training_key)).astype(np.int32)
        if pixels.ndim == 2:
            pixels = pixels - item.training_offset
        mask = mask_codec.decode_png(store.get(item.mask_key))
        sink(f"images/{item.split}/{item.image_id}.nii.gz", _nifti(_to_nifti_axes(pixels.astype(np.int16))))
        sink(f"masks/{item.split}/{item.image_id}.nii.gz", _nifti(_to_nifti_axes(mask)))
    return []


def _to_nifti_axes(array: np.ndarray) -> np.ndarray:
    """(rows, cols[, channels]) → (cols, rows, 1[, channels]): NIfTI's first axis runs along x."""
    swapped = np.swapaxes(array, 0, 1)
    return swapped[:, :, np.newaxis, ...] if swapped.ndim == 2 else swapped[:, :, np.newaxis, :]


def _nifti(array: np.ndarray) -> bytes:
    image = nib.Nifti1Image(array, affine=np.eye(4))
    return gzip.compress(image.to_bytes(), compresslevel=6)


def write_dicom_seg(store: ObjectStore, settings: ProjectSettings, items: list[ExportItem], sink: Sink) -> list[str]:
    """One binary DICOM SEG per labelled image, referencing its de-identified source instance."""
    skipped = []
    for item in items:
        seg = seg_object(store, settings, item)
        if isinstance(seg, str):
            skipped.append(f"{item.image_id}: {seg}")
        else:
            sink(f"segs/{item.split}/{item.image_id}.dcm", seg.data)
    return skipped


@dataclass(frozen=True, repr=False)
class SegObject:
    """One encoded SEG: its own UIDs (new objects, never a source's) and the Part-10 bytes."""

    image_id: str
    sop_uid: str
    data: bytes


def source_of(store: ObjectStore, item: ExportItem) -> pydicom.Dataset | str:
    """The de-identified source instance of ``item``, or why it cannot carry a SEG."""
    if item.dicom_key is None:
        return "no source DICOM instance recorded"
    source = pydicom.dcmread(io.BytesIO(store.get(item.dicom_key)))
    if int(getattr(source, "NumberOfFrames", 1) or 1) > 1:
        return "multi-frame sources are not exported as SEG yet"
    return source


def seg_uids(item: ExportItem, source: pydicom.Dataset, reference: str) -> tuple[str, str]:
    """(series, SOP instance) UIDs of the SEG of ``item``: derived from the mask and the reference mode, so a
    re-export of the same mask sends the same object again (an archive replaces it) instead of a duplicate."""
    series = _derived_uid("seg-series", str(source.SeriesInstanceUID), reference)
    sop = _derived_uid("seg", item.image_id, str(item.mask_key), reference)
    return series, sop


def _derived_uid(*parts: str) -> str:
    """A 2.25 UID (PS3.5 B.2) from a name-based UUID: the same parts always give the same UID."""
    return f"2.25.{uuid.uuid5(SEG_NAMESPACE, '/'.join(parts)).int}"


def seg_object(
    store: ObjectStore,
    settings: ProjectSettings,
    item: ExportItem,
    *,
    source: pydicom.Dataset | None = None,
    reference: str = "deidentified",
) -> SegObject | str:
    """The SEG of ``item``'s newest mask over ``source`` (default: its de-identified instance), or why not.

    For the clinical PACS the caller passes a copy of the source carrying the original UIDs: the SEG then
    joins the original study and references the original instance.
    """
    assert item.mask_key is not None
    found = source if source is not None else source_of(store, item)
    if isinstance(found, str):
        return found
    mask = mask_codec.decode_png(store.get(item.mask_key))
    present = [c for c in range(1, settings.num_classes) if (mask == c).any()]
    if not present:
        return "the mask has no foreground"
    series_uid, sop_uid = seg_uids(item, found, reference)
    try:
        seg = _segmentation(
            found, mask, present, settings, machine_made=bool(item.machine_made), uids=(series_uid, sop_uid)
        )
    except (ValueError, TypeError, AttributeError) as exc:
        # The exception's type only: its text may quote the source's attributes (UIDs of the clinical PACS).
        return f"the source instance cannot carry a SEG ({type(exc).__name__})"
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return SegObject(item.image_id, sop_uid, buffer.getvalue())


def _segmentation(
    source: pydicom.Dataset,
    mask: np.ndarray,
    present: list[int],
    settings: ProjectSettings,
    *,
    machine_made: bool,
    uids: tuple[str, str],
) -> hd.seg.Segmentation:
    algorithm = (
        hd.AlgorithmIdentificationSequence(
            name="medal committee", family=codes.cid7162.ArtificialIntelligence, version="0.1"
        )
        if machine_made
        else None
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=settings.classes[class_index - 1].name[:64],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=(
                hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
                if machine_made
                else hd.seg.SegmentAlgorithmTypeValues.MANUAL
            ),
            algorithm_identification=algorithm,
        )
        for number, class_index in enumerate(present, start=1)
    ]
    stacked = np.stack([mask == class_index for class_index in present], axis=-1)[np.newaxis]
    return hd.seg.Segmentation(
        source_images=[source],
        pixel_array=stacked,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=uids[0],
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=uids[1],
        instance_number=1,
        manufacturer="medal",
        manufacturer_model_name="medal annotation export",
        software_versions="0.1",
        device_serial_number="none",
        content_label="MEDAL",
    )
