"""Exports of a project's labelled data set: png (medal's data-set folder), coco, nifti, dicom-seg.

:func:`collect` reads what to export (each image's newest mask, human or machine-made); the
writers turn it into files handed to a sink (a folder or a zip stream). Held-out images go to the
``test`` split, the rest to ``train``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from sqlalchemy import select

from medal.access import Caller, audit
from medal.db.schema import annotation as tables
from medal.platform import Platform
from medal.storage import ObjectStore
from services.annotation import mask_codec, projects
from services.annotation.settings import ProjectSettings

ExportFormat = Literal["png", "coco", "nifti", "dicom-seg"]
FORMATS: tuple[str, ...] = ("png", "coco", "nifti", "dicom-seg")
Sink = Callable[[str, bytes], None]


@dataclass(frozen=True)
class ExportItem:
    image_id: str
    split: str
    width: int
    height: int
    display_key: str
    training_key: str
    training_offset: int
    dicom_key: str | None
    mask_key: str | None
    machine_made: bool | None
    model_version_id: str | None
    confidence: float | None


@dataclass
class ExportSummary:
    format: str
    images: int = 0
    human: int = 0
    machine: int = 0
    without_mask: int = 0
    skipped: list[str] = field(default_factory=list)


async def collect(platform: Platform, project_name: str) -> tuple[projects.ProjectRecord, list[ExportItem]]:
    i, m = tables.images, tables.masks
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        newest: dict[str, object] = {}
        for row in await conn.execute(select(m).where(m.c.project_id == project.id).order_by(m.c.version)):
            newest[row.image_id] = row
        images = (await conn.execute(select(i).where(i.c.project_id == project.id).order_by(i.c.id))).all()
    items = []
    for image in images:
        mask = newest.get(image.id)
        items.append(
            ExportItem(
                image_id=image.id,
                split="test" if image.held_out else "train",
                width=image.width,
                height=image.height,
                display_key=image.display_key,
                training_key=image.training_key,
                training_offset=image.training_offset or 0,
                dicom_key=image.dicom_key,
                mask_key=getattr(mask, "key", None),
                machine_made=getattr(mask, "machine_made", None),
                model_version_id=getattr(mask, "model_version_id", None),
                confidence=getattr(mask, "confidence", None),
            )
        )
    return project, items


def write_export(
    store: ObjectStore, settings: ProjectSettings, project: str, items: list[ExportItem], fmt: str, sink: Sink
) -> ExportSummary:
    """Write the export through ``sink`` (runs in a worker thread: it reads objects)."""
    summary = ExportSummary(fmt)
    labelled = [item for item in items if item.mask_key is not None]
    summary.without_mask = len(items) - len(labelled)
    summary.human = sum(1 for item in labelled if not item.machine_made)
    summary.machine = len(labelled) - summary.human
    if fmt == "png":
        _png(store, labelled, sink)
    elif fmt == "coco":
        _coco(store, settings, project, labelled, sink)
    elif fmt in ("nifti", "dicom-seg"):
        from services.annotation import exports_medical

        writer = exports_medical.write_nifti if fmt == "nifti" else exports_medical.write_dicom_seg
        summary.skipped = writer(store, settings, labelled, sink)
    else:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    summary.images = len(labelled) - len(summary.skipped)
    sink("classes.json", json.dumps(_classes(settings), indent=2).encode())
    return summary


def _classes(settings: ProjectSettings) -> list[dict[str, object]]:
    return [{"index": 0, "name": "background", "colour": "#000000"}] + [
        {"index": n, "name": c.name, "colour": c.colour} for n, c in enumerate(settings.classes, start=1)
    ]


def _png(store: ObjectStore, items: list[ExportItem], sink: Sink) -> None:
    rows = []
    for item in items:
        assert item.mask_key is not None
        image_path = f"images/{item.split}/{item.image_id}.png"
        mask_path = f"masks/{item.split}/{item.image_id}.png"
        sink(image_path, store.get(item.display_key))
        sink(mask_path, store.get(item.mask_key))
        rows.append(
            {
                "split": item.split,
                "id": item.image_id,
                "image": image_path,
                "mask": mask_path,
                "width": item.width,
                "height": item.height,
                "source": "machine" if item.machine_made else "human",
                "model_version": item.model_version_id or "",
                "confidence": "" if item.confidence is None else f"{item.confidence:.4f}",
            }
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=["split", "id", "image", "mask", "width", "height", "source", "model_version", "confidence"]
    )
    writer.writeheader()
    writer.writerows(rows)
    sink("manifest.csv", buffer.getvalue().encode())


def coco_rle(binary: np.ndarray) -> dict[str, object]:
    """COCO's uncompressed RLE: run lengths in column-major order, starting with a run of zeros."""
    flat = np.asarray(binary, dtype=np.uint8).ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(binary.shape[0]), int(binary.shape[1])], "counts": [int(c) for c in counts]}


def _coco(store: ObjectStore, settings: ProjectSettings, project: str, items: list[ExportItem], sink: Sink) -> None:
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for number, item in enumerate(items, start=1):
        assert item.mask_key is not None
        file_name = f"images/{item.image_id}.png"
        sink(file_name, store.get(item.display_key))
        images.append(
            {
                "id": number,
                "file_name": file_name,
                "width": item.width,
                "height": item.height,
                "medal_image_id": item.image_id,
                "split": item.split,
            }
        )
        mask = mask_codec.decode_png(store.get(item.mask_key))
        for class_index in range(1, settings.num_classes):
            binary = mask == class_index
            if not binary.any():
                continue
            rows, cols = np.nonzero(binary)
            x, y = int(cols.min()), int(rows.min())
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": class_index,
                    "segmentation": coco_rle(binary),
                    "area": int(binary.sum()),
                    "iscrowd": 1,
                    "bbox": [x, y, int(cols.max()) - x + 1, int(rows.max()) - y + 1],
                    "medal_source": "machine" if item.machine_made else "human",
                    "medal_confidence": item.confidence,
                }
            )
    document = {
        "info": {"description": f"medal export of project {project}"},
        "categories": [
            {"id": n, "name": c.name, "supercategory": "finding"} for n, c in enumerate(settings.classes, start=1)
        ],
        "images": images,
        "annotations": annotations,
    }
    sink("annotations.json", json.dumps(document).encode())


def decode_image(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def zip_sink(archive: zipfile.ZipFile) -> Sink:
    def write(path: str, data: bytes) -> None:
        archive.writestr(path, data)

    return write


def folder_sink(root: Path) -> Sink:
    def write(path: str, data: bytes) -> None:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    return write


async def record_export(platform: Platform, caller: Caller, project: str, summary: ExportSummary) -> None:
    """Who exported what (counts, never names) into the audit trail, once the export was written."""
    details = {"format": summary.format, "images": summary.images, "human": summary.human, "machine": summary.machine}
    async with platform.db.begin() as conn:
        await audit.record(conn, caller, "exported", project, "project", project, details)


async def export_to(platform: Platform, project_name: str, fmt: str, sink: Sink) -> ExportSummary:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    project, items = await collect(platform, project_name)
    return await asyncio.to_thread(write_export, platform.store, project.settings, project.name, items, fmt, sink)
