"""The MONAI Label API, driven by monailabel's own client as 3D Slicer and OHIF use it."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nibabel as nib
import numpy as np
import pytest
import requests
from monailabel.client import MONAILabelClient
from monailabel.client.client import MONAILabelClientException
from PIL import Image

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.settings import Settings
from proto import ModelPromoted, ModelTrained, envelope_for
from proto.loop import TrainingSpec
from tests.annotation.ui.conftest import CLASSES, Running, labelling_project
from tests.committee_helpers import store_members
from tests.e2e.helpers import wait_for

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


@pytest.fixture(scope="module")
def with_inference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("ml-infer"), api_keys=[])
    app = build_app(settings, ["annotation", "ingest", "inference"], consume=True, migrate=True)
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        yield Running(base, http, app)


def test_train_reports_the_model_and_infer_returns_its_mask(with_inference: Running, tmp_path: Path) -> None:
    project = "ml-infer"
    image_ids = labelling_project(with_inference, project)
    client = MONAILabelClient(f"{with_inference.base}/annotation/monailabel/{project}", tmpdir=str(tmp_path))
    with pytest.raises(MONAILabelClientException, match="no-model"):  # inference's own 409, passed through
        client.infer("medal", image_ids[0], {})

    sample = client.next_sample("suggestive", {"client_id": "dr-who"})
    label = np.zeros((sample["height"], sample["width"]), dtype=np.uint8)
    label[:8, :8] = 1
    (tmp_path / "label.png").write_bytes(png_of(label))
    assert (
        client.save_label(sample["id"], str(tmp_path / "label.png"), tag="final", params={"client_id": "dr-who"})[
            "task_id"
        ]
        == sample["task_id"]
    )
    # client_id names nobody: the caller (here the local user, no API keys) is the label's author.
    authors = with_inference.http.get(f"/annotation/v1/projects/{project}/masks").json()
    assert [m["author"] for m in authors] == ["local"]
    started = client.train_start("medal", {})
    assert started["status"] == "RUNNING"

    # The trainer's answer for that round: a (tiny, untrained) committee registered as version 1.
    platform = with_inference.app.state.platform
    spec = TrainingSpec(num_classes=3, image_size=16, width=1 / 16, max_epochs=1, patience=1, batch_size=2)
    event = ModelTrained(
        project=project,
        round_id=uuid.UUID(started["id"]),
        model_version_id=uuid.uuid4(),
        version=1,
        member_keys=store_members(platform, 2, spec=spec),
        validation_dice=0.42,
        labels=1,
        training=spec,
    )
    platform.bus.publish(envelope_for(event, source="trainer"))
    promoted = ModelPromoted(project=project, model_version_id=event.model_version_id, version=1)
    platform.bus.publish(envelope_for(promoted, source="trainer"))  # the trainer decides it is current
    wait_for(lambda: client.info()["models"]["medal"]["version"] == 1)
    status = client.train_status()
    assert status["status"] == "DONE" and status["result"] == {"version": 1, "labels": 1, "validation_dice": 0.42}

    predicted_path, params = wait_for(lambda: _infer_when_ready(client, image_ids[1]))
    assert params["version"] == 1 and params["model_version_id"] == str(event.model_version_id)
    predicted = np.asarray(Image.open(predicted_path))
    meta = {i["id"]: i for i in with_inference.http.get(f"/annotation/v1/projects/{project}/images").json()["images"]}
    assert predicted.shape == (meta[image_ids[1]]["height"], meta[image_ids[1]]["width"])
    assert set(np.unique(predicted)) <= {0, 1, 2}
    image_only = requests.post(
        f"{client.get_server_url()}/infer/medal", params={"image": image_ids[1], "output": "image"}, timeout=60
    )
    assert image_only.headers["content-type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(image_only.content))), predicted)


def _infer_when_ready(client: MONAILabelClient, image_id: str) -> tuple[str, dict[str, Any]] | None:
    """Inference learns of the model from its own copies of model.trained and model.promoted: retry until it has it."""
    try:
        path, params = client.infer("medal", image_id, {})
    except MONAILabelClientException as exc:
        if "no-model" in exc.msg:
            return None
        raise
    return path, params
