"""NIfTI and DICOM SEG exports (the formats radiology tools read)."""

from __future__ import annotations

import gzip
import io
import logging

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
        assert item.mask_key is not None
        if item.dicom_key is None:
            skipped.append(f"{item.image_id}: no source DICOM instance recorded")
            continue
        source = pydicom.dcmread(io.BytesIO(store.get(item.dicom_key)))
        if int(getattr(source, "NumberOfFrames", 1) or 1) > 1:
            skipped.append(f"{item.image_id}: multi-frame sources are not exported as SEG yet")
            continue
        mask = mask_codec.decode_png(store.get(item.mask_key))
        present = [c for c in range(1, settings.num_classes) if (mask == c).any()]
        if not present:
            skipped.append(f"{item.image_id}: the mask has no foreground")
            continue
        try:
            seg = _segmentation(source, mask, present, settings, machine_made=bool(item.machine_made))
        except (ValueError, TypeError, AttributeError) as exc:
            skipped.append(f"{item.image_id}: source cannot carry a SEG ({exc})")
            continue
        buffer = io.BytesIO()
        seg.save_as(buffer)
        sink(f"segs/{item.split}/{item.image_id}.dcm", buffer.getvalue())
    return skipped


def _segmentation(
    source: pydicom.Dataset, mask: np.ndarray, present: list[int], settings: ProjectSettings, *, machine_made: bool
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
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medal",
        manufacturer_model_name="medal annotation export",
        software_versions="0.1",
        device_serial_number="none",
        content_label="MEDAL",
    )
