"""The MONAI Label API, driven by monailabel's own client as 3D Slicer and OHIF use it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import requests
from monailabel.client import MONAILabelClient
from monailabel.client.client import MONAILabelClientException
from PIL import Image

from tests.ui.conftest import CLASSES, Running, labelling_project

PROJECT = "covid-ct"


def png_of(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def test_full_cycle_info_next_sample_download_save_label_train(running: Running, tmp_path: Path) -> None:
    image_ids = labelling_project(running, PROJECT)
    client = MONAILabelClient(f"{running.base}/annotation/monailabel/{PROJECT}", tmpdir=str(tmp_path))

    info = client.info()
    assert info["labels"] == [c["name"] for c in CLASSES]
    assert info["models"]["medal"]["labels"] == {"ground-glass": 1, "consolidation": 2}
    assert info["datastore"] == {"total": 2, "completed": 0}
    strategy = next(iter(info["strategies"]))
    assert strategy == "suggestive"

    listing = client.datastore()
    assert sorted(listing["objects"]) == sorted(image_ids)
    assert all(entry["labels"] == {} for entry in listing["objects"].values())

    sample = client.next_sample(strategy, {})
    assert sample["id"] in image_ids and sample["status"] == "leased"
    downloaded = requests.get(f"{client.get_server_url()}/datastore/image", params={"image": sample["id"]}, timeout=30)
    assert downloaded.status_code == 200
    pixels = np.asarray(Image.open(io.BytesIO(downloaded.content)))
    assert pixels.shape == (sample["height"], sample["width"])

    label = np.zeros(pixels.shape, dtype=np.uint8)
    label[10:30, 20:50] = 1
    label[40:45, 40:60] = 2
    label_file = tmp_path / "label.png"
    label_file.write_bytes(png_of(label))
    saved = client.save_label(sample["id"], str(label_file), tag="final")
    assert saved["image"] == sample["id"] and saved["version"] == 1 and saved["task_id"] == sample["task_id"]

    # The task left the queue: the next sample is the other image, and the stored mask is the label.
    stored = running.http.get(f"/annotation/v1/images/{sample['id']}/mask")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored.content))), label)
    other = client.next_sample(strategy, {})
    assert other["id"] != sample["id"] and other["id"] in image_ids

    # Download the label back as Slicer does.
    label_path = client.download_label(sample["id"], "final")
    assert np.array_equal(np.asarray(Image.open(label_path)), label)
    assert client.datastore()["objects"][sample["id"]]["labels"]["final"]["info"]["version"] == 1
    assert client.info()["datastore"]["completed"] == 1

    assert client.train_status()["status"] == "NONE"
    assert client.train_status(check_if_running=True) is False
    started = client.train_start("medal", {})  # closes the open round: the committee trains on the label
    assert started["status"] == "RUNNING" and started["round"] == 0
    assert client.train_status(check_if_running=True) is True
    with pytest.raises(MONAILabelClientException, match="training-not-cancellable"):
        client.train_stop()
    with pytest.raises(MONAILabelClientException, match="no-open-round"):
        client.train_start("medal", {})


def test_nifti_label_without_lease_saves_a_new_version_and_bad_input_is_refused(
    running: Running, tmp_path: Path
) -> None:
    project = "slicer-nifti"
    image_ids = labelling_project(running, project)
    client = MONAILabelClient(f"{running.base}/annotation/monailabel/{project}", tmpdir=str(tmp_path))
    image_id = image_ids[0]
    meta = running.http.get(f"/annotation/v1/projects/{project}/images").json()["images"]
    height, width = next((i["height"], i["width"]) for i in meta if i["id"] == image_id)
    label = np.zeros((height, width), dtype=np.uint8)
    label[5:9, 3:30] = 2
    nifti = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(label.T[:, :, None].astype(np.uint8), np.eye(4)), str(nifti))
    saved = client.save_label(image_id, str(nifti), tag="final")
    assert saved["task_id"] is None and saved["version"] == 1  # nobody leased it: a new mask version
    stored = running.http.get(f"/annotation/v1/images/{image_id}/mask")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored.content))), label)

    text = tmp_path / "label.txt"
    text.write_text("not a mask")
    with pytest.raises(MONAILabelClientException, match="unsupported-label"):
        client.save_label(image_id, str(text), tag="final")
    wrong_size = tmp_path / "small.png"
    wrong_size.write_bytes(png_of(np.zeros((4, 4))))
    with pytest.raises(MONAILabelClientException, match="invalid-mask"):
        client.save_label(image_id, str(wrong_size), tag="final")
    with pytest.raises(MONAILabelClientException, match="strategy-not-found"):
        client.next_sample("random", {})
    # No inference service in this process: a clear 503, not a crash.
    with pytest.raises(MONAILabelClientException) as refused:
        client.infer("medal", image_id, {})
    assert "inference-unavailable" in refused.value.msg


def test_unknown_project_is_a_json_404(running: Running) -> None:
    answer = running.http.get("/annotation/monailabel/nobody/info/")
    assert answer.status_code == 404
    assert json.loads(answer.text)["error"]["code"] == "project-not-found"
