"""The authenticated caller, never the request, is who submitted a job and who released an instance."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.settings import Settings
from tests.ingest.conftest import ct_dataset, encode

UPLOADER, REVIEWER = "uploader-key-0123456789", "reviewer-key-0123456789"


def caller_id(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("authors"), api_keys=[SecretStr(UPLOADER), SecretStr(REVIEWER)]
    )
    with serve_in_thread(build_app(settings, ["ingest"], consume=False, migrate=True)) as url:
        yield url


def ultrasound(number: int) -> bytes:
    ds = ct_dataset()
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.997.{number}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "US"  # quarantined: ultrasound may carry burned-in text
    return encode(ds)


def test_the_caller_submits_and_releases(base: str) -> None:
    with httpx.Client(timeout=120) as client:
        files = [("files", ("a.dcm", ultrasound(1), "application/dicom"))]
        form = {"submitted_by": "someone-else", "released_by": "someone-else"}
        upload = client.post(
            f"{base}/ingest/v1/projects/authors/instances", files=files, data=form, headers={"X-API-Key": UPLOADER}
        )
        assert upload.status_code == 200, upload.text
        job = upload.json()["job"]
        assert job["submitted_by"] == caller_id(UPLOADER)
        polled = client.get(f"{base}/ingest/v1/jobs/{job['id']}", headers={"X-API-Key": REVIEWER}).json()
        assert polled["job"]["submitted_by"] == caller_id(UPLOADER)

        (instance,) = upload.json()["results"]
        assert instance["outcome"] == "quarantined"
        path = f"{base}/ingest/v1/projects/authors/quarantine/{instance['instance_id']}/release"
        assert client.post(path).status_code == 401
        released = client.post(path, json=form, headers={"Authorization": f"Bearer {REVIEWER}"}).json()
        assert released["released_by"] == caller_id(REVIEWER) and released["released_images"] == 1
        again = client.post(path, headers={"X-API-Key": UPLOADER}).json()
        assert again == {**released, "released_images": 0}
