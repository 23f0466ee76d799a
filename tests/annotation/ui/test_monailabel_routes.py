"""MONAI Label 0.8.5 to the letter, with monailabel's own client: a fresh project (no round) through
info → next sample → image download and HEAD checks → save label → train → train status; image upload
through ingest; sessions; scoring, batch inference and the model file; the auth routes; roles."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import requests
from monailabel.client import MONAILabelClient
from monailabel.client.client import MONAILabelClientException
from PIL import Image
from pydicom.data import get_testdata_file
from starlette.requests import Request

from medal.access.keys import create_key
from medal.app import build_app
from medal.db.engine import Database
from medal.db.migrate import upgrade
from medal.local_server import serve_in_thread
from medal.platform import Platform
from medal.settings import Settings
from services.annotation import peers
from tests.annotation.ui.conftest import CLASSES, Running
from tests.e2e.helpers import image_page, wait_for

ADMIN_KEY = "platform-admin-key-for-monailabel-tests"


def dicom(name: str) -> bytes:
    return Path(str(get_testdata_file(f"{name}.dcm"))).read_bytes()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, str]]:
    """annotation + ingest with API keys on, and an annotator's project key for the project ``fresh``."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("ml-routes"), api_keys=[ADMIN_KEY], monailabel_session_max_bytes=200_000
    )
    upgrade(settings.effective_database_url)

    async def make() -> str:
        db = Database(settings.effective_database_url)
        async with db.begin() as conn:
            _, key = await create_key(conn, project="fresh", role="annotator", label="", created_by="test")
        await db.dispose()
        return key

    annotator = asyncio.run(make())
    app = build_app(settings, ["annotation", "ingest"], consume=True, migrate=True)
    with (
        serve_in_thread(app) as base,
        httpx.Client(base_url=base, timeout=60, headers={"X-API-Key": ADMIN_KEY}) as http,
    ):
        yield Running(base, http, app), annotator


def _client(base: str, project: str, tmp_path: Path, key: str) -> MONAILabelClient:
    client = MONAILabelClient(f"{base}/annotation/monailabel/{project}", tmpdir=str(tmp_path))
    client._headers = {"X-API-Key": key}
    return client


def test_a_fresh_project_from_info_to_train_status(secured: tuple[Running, str], tmp_path: Path) -> None:
    running, annotator_key = secured
    http = running.http
    settings = {"classes": CLASSES, "initial_labels": 2, "candidates": 2, "batch": 1}
    assert http.post("/annotation/v1/projects", json={"name": "fresh", "settings": settings}).status_code == 201
    admin = _client(running.base, "fresh", tmp_path, ADMIN_KEY)
    annotator = _client(running.base, "fresh", tmp_path, annotator_key)

    # MONAI Label's own upload: DICOM goes through ingest (de-identified), anything else is refused.
    (tmp_path / "ct.dcm").write_bytes(dicom("CT_small"))
    (tmp_path / "mr.dcm").write_bytes(dicom("MR_small"))
    added = admin.upload_image(str(tmp_path / "ct.dcm"), image_id="ignored")
    assert added["results"][0]["outcome"] == "accepted"
    admin.upload_image(str(tmp_path / "mr.dcm"), image_id="mr")
    (tmp_path / "x.nii.gz").write_bytes(b"\x1f\x8bnot dicom")
    with pytest.raises(MONAILabelClientException, match="dicom-required"):
        admin.upload_image(str(tmp_path / "x.nii.gz"), image_id="x")
    with pytest.raises(MONAILabelClientException, match="forbidden"):  # adding images is a project admin's
        annotator.upload_image(str(tmp_path / "ct.dcm"), image_id="ct")
    wait_for(lambda: image_page(http, running.base, "fresh")["total"] == 2)

    info = annotator.info()
    assert info["datastore"] == {"total": 2, "completed": 0} and list(info["strategies"]) == ["suggestive"]
    # No round yet: the next sample starts the cold-start round and answers an image.
    sample = annotator.next_sample("suggestive", {})
    assert sample["status"] == "leased" and sample["round"] == 0 and added["image"] in sample["id"] + added["image"]
    url = f"{annotator.get_server_url()}/datastore/image"
    headers = {"X-API-Key": annotator_key}
    downloaded = requests.get(url, params={"image": sample["id"]}, headers=headers, timeout=30)
    digest = hashlib.sha256(downloaded.content).hexdigest()
    assert downloaded.status_code == 200 and downloaded.headers["x-checksum"] == f"SHA256:{digest}"
    for check_sum, status in ((f"SHA256:{digest}", 200), (digest, 200), ("SHA256:" + "0" * 64, 404), (None, 200)):
        head = requests.head(url, params={"image": sample["id"], "check_sum": check_sum}, headers=headers, timeout=30)
        assert head.status_code == status and (status != 200 or head.headers["etag"] == f'"{digest}"')
    md5 = hashlib.md5(downloaded.content).hexdigest()
    assert requests.head(url, params={"image": sample["id"], "check_sum": f"MD5:{md5}"}, headers=headers).ok
    assert requests.head(url, params={"image": "not-an-id"}, headers=headers).status_code == 404

    label_url = f"{annotator.get_server_url()}/datastore/label"
    assert requests.head(label_url, params={"image": sample["id"], "tag": "final"}, headers=headers).status_code == 404
    label = np.zeros((sample["height"], sample["width"]), dtype=np.uint8)
    label[4:20, 4:20] = 1
    buffer = io.BytesIO()
    Image.fromarray(label, mode="L").save(buffer, format="PNG")
    (tmp_path / "label.png").write_bytes(buffer.getvalue())
    saved = annotator.save_label(sample["id"], str(tmp_path / "label.png"), tag="final")
    assert saved["task_id"] == sample["task_id"] and saved["version"] == 1
    head = requests.head(label_url, params={"image": sample["id"], "tag": "final"}, headers=headers)
    assert head.status_code == 200 and head.headers["x-label-version"] == "1"
    assert (
        requests.head(label_url, params={"image": sample["id"], "tag": "original"}, headers=headers).status_code == 404
    )
    train_list = requests.get(f"{annotator.get_server_url()}/datastore/", params={"output": "train"}, headers=headers)
    assert [entry["image"].endswith(sample["id"]) for entry in train_list.json()] == [True]

    with pytest.raises(MONAILabelClientException, match="forbidden"):  # training is a project admin's
        annotator.train_start("medal", {})
    started = admin.train_start("medal", {})
    assert started["status"] == "RUNNING" and started["round"] == 0
    assert annotator.train_status()["status"] == "RUNNING" and annotator.train_status(check_if_running=True) is True

    dataset = requests.get(f"{admin.get_server_url()}/datastore/dataset", headers={"X-API-Key": ADMIN_KEY})
    names = zipfile.ZipFile(io.BytesIO(dataset.content)).namelist()
    assert f"masks/train/{sample['id']}.png" in names and "manifest.csv" in names


def test_scoring_batch_infer_model_and_sessions(secured: tuple[Running, str], tmp_path: Path) -> None:
    running, annotator_key = secured
    base = f"{running.base}/annotation/monailabel/fresh"
    admin = {"X-API-Key": ADMIN_KEY}
    assert httpx.get(f"{base}/scoring/", headers=admin).json()["status"] == "NONE"
    assert httpx.get(f"{base}/scoring/", params={"check_if_running": True}, headers=admin).status_code == 404
    no_model = httpx.post(f"{base}/scoring/suggestive", headers=admin)
    assert no_model.status_code == 409 and no_model.json()["error"]["code"] == "no-model"
    assert httpx.post(f"{base}/scoring/random", headers=admin).status_code == 404
    assert httpx.post(f"{base}/scoring/suggestive", headers={"X-API-Key": annotator_key}).status_code == 403
    assert httpx.get(f"{base}/batch/infer", headers=admin).json()["status"] == "NONE"
    assert httpx.post(f"{base}/batch/infer/medal", params={"images": "labeled"}, headers=admin).status_code == 422
    assert httpx.post(f"{base}/batch/infer/medal", headers=admin).json()["error"]["code"] == "no-model"
    missing = httpx.get(f"{base}/model/info/medal", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model-not-found"
    assert httpx.get(f"{base}/model/info/medal", headers={"X-API-Key": annotator_key}).status_code == 403

    client = _client(running.base, "fresh", tmp_path, annotator_key)
    image = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    (tmp_path / "session.png").write_bytes(buffer.getvalue())
    session_id = client.create_session(str(tmp_path / "session.png"))["session_id"]
    info = client.get_session(session_id)
    assert info["meta"] == {"width": 64, "height": 48, "inference_only": True} and info["expiry"] == 3600
    assert running.http.get("/annotation/v1/projects/fresh").json()["images"] == 2  # not in the project
    # Inference on the session's image goes to the inference service (tests/inference predicts one); this
    # process serves annotation and ingest only, so the answer says which service is missing.
    inferred = httpx.post(
        f"{base}/infer/medal",
        params={"image": "session", "session_id": session_id},
        headers={"X-API-Key": annotator_key},
    )
    assert inferred.status_code == 503 and inferred.json()["error"]["code"] == "inference-unavailable", inferred.text
    client.remove_session(session_id)
    with pytest.raises(MONAILabelClientException):
        client.get_session(session_id)
    (tmp_path / "big.png").write_bytes(b"\x89PNG" + b"0" * 300_000)
    big = requests.put(f"{base}/session/", files={"files": open(tmp_path / "big.png", "rb")}, headers=admin)  # noqa: SIM115
    assert big.status_code == 413 and big.json()["error"]["code"] == "session-too-large"
    (tmp_path / "bad.png").write_bytes(b"not an image")
    bad = requests.put(f"{base}/session/", files={"files": open(tmp_path / "bad.png", "rb")}, headers=admin)  # noqa: SIM115
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unreadable-session-image"


def test_auth_routes_and_unknown_callers(secured: tuple[Running, str]) -> None:
    running, annotator_key = secured
    base = f"{running.base}/annotation/monailabel/fresh"
    assert httpx.get(f"{base}/auth/").json() == {"enabled": False, "client_id": None, "realm": None}
    token = httpx.post(f"{base}/auth/token", data={"username": "a", "password": "b"})
    assert token.json() == {"access_token": None, "token_type": None}
    assert httpx.get(f"{base}/auth/token/valid").status_code == 401
    valid = httpx.get(f"{base}/auth/token/valid", headers={"X-API-Key": annotator_key})
    assert valid.status_code == 200 and valid.json()["roles"] == ["annotator"]
    assert httpx.get(f"{base}/info/").status_code == 401
    other = httpx.get(f"{running.base}/annotation/monailabel/elsewhere/info/", headers={"X-API-Key": annotator_key})
    assert other.status_code == 404 and other.json()["error"]["code"] == "project-not-found"


def test_distributed_mode_without_a_service_url_answers_503_instead_of_calling_itself(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker_url="amqp://guest:guest@127.0.0.1:5672/")
    platform = Platform.__new__(Platform)
    platform.settings = settings
    request = Request({"type": "http", "scheme": "http", "server": ("annotation", 8000), "path": "/", "headers": []})
    for service in ("ingest", "inference", "trainer"):
        with pytest.raises(peers.ServiceUrlNotConfigured) as refused:
            peers.service_url(request, platform, service, None)
        assert refused.value.status == 503 and f"MEDAL_{service.upper()}_URL" in refused.value.message
    assert peers.service_url(request, platform, "ingest", "http://medal-ingest:8000/") == "http://medal-ingest:8000"
    embedded = Settings(data_dir=tmp_path)
    platform.settings = embedded
    assert peers.service_url(request, platform, "ingest", None) == "http://annotation:8000"
