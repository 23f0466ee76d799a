"""Exports in every format, read back with the tools that consume them."""

from __future__ import annotations

import gzip
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import highdicom as hd
import httpx
import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.settings import Settings
from proto import ImageIngested, envelope_for
from tests.e2e.helpers import wait_for

PROJECT = "export-me"


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, dict[str, np.ndarray], Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("exports"), api_keys=[])
    app = build_app(settings, ["annotation"], consume=True, migrate=True)
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        platform = app.state.platform
        http.post(
            "/annotation/v1/projects",
            json={
                "name": PROJECT,
                "settings": {
                    "classes": [
                        {"name": "ground-glass", "colour": "#00ff00"},
                        {"name": "consolidation", "colour": "#ff0000"},
                    ],
                    "initial_labels": 2,
                    "batch": 1,
                    "candidates": 1,
                },
            },
        )
        source = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
        hu = source.pixel_array.astype(np.int32) * int(source.RescaleSlope) + int(source.RescaleIntercept)
        offset = int(-hu.min())
        training = png_bytes((hu + offset).astype(np.uint16))
        display = png_bytes(np.clip((hu + 1000) / 8, 0, 255).astype(np.uint8))
        buffer = io.BytesIO()
        source.save_as(buffer)
        keys = {
            "display": platform.store.put_content("display", display, "png", "image/png").key,
            "training": platform.store.put_content("training", training, "png", "image/png").key,
            "dicom": platform.store.put_content("dicom", buffer.getvalue(), "dcm", "application/dicom").key,
        }
        for frame in range(2):  # two images sharing the same pixels
            event = ImageIngested(
                project=PROJECT,
                image_id=uuid.uuid4(),
                study_id=uuid.uuid4(),
                series_id=uuid.uuid4(),
                instance_id=uuid.uuid4(),
                frame=frame,
                modality="CT",
                width=128,
                height=128,
                display_key=keys["display"],
                display_sha256=keys["display"].split("/")[-1][:64],
                training_key=keys["training"],
                training_sha256=keys["training"].split("/")[-1][:64],
                training_offset=offset,
                dicom_key=keys["dicom"],
            )
            platform.bus.publish(envelope_for(event, source="ingest"))
        wait_for(lambda: http.get(f"/annotation/v1/projects/{PROJECT}/images").json()["total"] == 2)
        http.post(f"/annotation/v1/projects/{PROJECT}/rounds")
        masks: dict[str, np.ndarray] = {}
        for n in range(2):
            task = http.post(f"/annotation/v1/projects/{PROJECT}/tasks/lease").json()["task"]
            mask = np.zeros((128, 128), dtype=np.uint8)
            mask[10 + n : 40, 20:60] = 1
            mask[70:90, 5 + n : 30] = 2
            response = http.post(
                f"/annotation/v1/tasks/{task['task_id']}/mask",
                content=png_bytes(mask),
                headers={"content-type": "image/png", "X-Lease-Token": task["lease_token"]},
            )
            assert response.status_code == 200, response.text
            masks[task["image_id"]] = mask
        yield http, masks, {"hu": hu, "sop": str(source.SOPInstanceUID), "app": app}


def download(http: httpx.Client, fmt: str) -> zipfile.ZipFile:
    response = http.get(f"/annotation/v1/projects/{PROJECT}/export", params={"format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(response.content))


def test_png_export_is_a_medal_data_set_folder(labelled: Any) -> None:
    http, masks, _ = labelled
    archive = download(http, "png")
    manifest = archive.read("manifest.csv").decode().splitlines()
    assert manifest[0] == "split,id,image,mask,width,height,source,model_version,confidence"
    assert len(manifest) == 3
    for image_id, mask in masks.items():
        stored = np.asarray(Image.open(io.BytesIO(archive.read(f"masks/train/{image_id}.png"))))
        assert np.array_equal(stored, mask)
    assert json.loads(archive.read("export.json"))["human"] == 2
    assert [c["name"] for c in json.loads(archive.read("classes.json"))] == [
        "background",
        "ground-glass",
        "consolidation",
    ]


def coco_decode(rle: dict[str, Any]) -> np.ndarray:
    height, width = rle["size"]
    flat = np.zeros(height * width, dtype=np.uint8)
    position, value = 0, 0
    for count in rle["counts"]:
        flat[position : position + count] = value
        position += count
        value = 1 - value
    return flat.reshape((height, width), order="F")


def test_coco_export_round_trips_the_masks(labelled: Any) -> None:
    http, masks, _ = labelled
    document = json.loads(download(http, "coco").read("annotations.json"))
    assert [c["name"] for c in document["categories"]] == ["ground-glass", "consolidation"]
    by_number = {image["id"]: image["medal_image_id"] for image in document["images"]}
    assert len(document["annotations"]) == 4
    for annotation in document["annotations"]:
        mask = masks[by_number[annotation["image_id"]]]
        expected = mask == annotation["category_id"]
        assert np.array_equal(coco_decode(annotation["segmentation"]), expected)
        assert annotation["area"] == int(expected.sum())


def test_nifti_export_keeps_modality_values(labelled: Any) -> None:
    http, masks, extra = labelled
    archive = download(http, "nifti")
    image_id, mask = next(iter(masks.items()))
    volume = nib.Nifti1Image.from_bytes(gzip.decompress(archive.read(f"images/train/{image_id}.nii.gz")))
    labels = nib.Nifti1Image.from_bytes(gzip.decompress(archive.read(f"masks/train/{image_id}.nii.gz")))
    assert volume.shape == (128, 128, 1)
    assert np.array_equal(np.asarray(volume.dataobj)[:, :, 0].T, extra["hu"])
    assert np.array_equal(np.asarray(labels.dataobj)[:, :, 0].T, mask)


def test_dicom_seg_export_references_the_source_instance(labelled: Any, tmp_path: Path) -> None:
    http, masks, extra = labelled
    archive = download(http, "dicom-seg")
    image_id, mask = next(iter(masks.items()))
    path = tmp_path / "seg.dcm"
    path.write_bytes(archive.read(f"segs/train/{image_id}.dcm"))
    seg = hd.seg.segread(path)
    referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    assert referenced == extra["sop"]
    pixels = seg.get_pixels_by_source_instance([extra["sop"]], segment_numbers=[1, 2])
    assert np.array_equal(pixels[0, :, :, 0].astype(bool), mask == 1)
    assert np.array_equal(pixels[0, :, :, 1].astype(bool), mask == 2)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["ground-glass", "consolidation"]


def test_cli_exports_embedded_state_and_refuses_bad_input(labelled: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    _, masks, extra = labelled
    data_dir = str(extra["app"].state.platform.settings.data_dir)
    env = {"PATH": "/usr/bin:/bin", "MEDAL_DATA_DIR": data_dir}
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "medal.cli", "export", "--project", PROJECT, "--format", "png", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "2 images (2 labelled by people, 0 by the model)" in result.stdout
    assert len(list((out / "masks" / "train").glob("*.png"))) == len(masks)
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "medal.cli",
            "export",
            "--project",
            "nope",
            "--format",
            "png",
            "--out",
            str(tmp_path / "other"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "no project named nope" in missing.stderr
