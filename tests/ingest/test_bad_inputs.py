"""Hostile and broken uploads over HTTP: each gets a per-file reason, nothing is half-stored, no 5xx."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.settings import Settings
from tests.e2e.helpers import image_page, wait_for
from tests.ingest.conftest import bundled, ct_dataset, encode

LIMIT = 8 * 1024**2


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("bad"), api_keys=[], max_upload_bytes=LIMIT)
    app = build_app(settings, ["ingest", "annotation"], consume=True, migrate=True)
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=120) as http:
        yield http


def zipped(members: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def encrypted_flag(archive: bytes) -> bytes:
    """Set the 'encrypted' general-purpose flag on every member (local and central headers)."""
    data = bytearray(archive)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            data[start + offset] |= 0x01
            start = data.find(signature, start + 4)
    return bytes(data)


def ct_variant(number: int, **attributes: Any) -> bytes:
    ds = ct_dataset()
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.998.{number}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return encode(ds)


def upload_zip(client: httpx.Client, base: str, project: str, archive: bytes) -> list[tuple[str, str | None]]:
    response = client.post(
        f"{base}/ingest/v1/projects/{project}/instances", content=archive, headers={"content-type": "application/zip"}
    )
    assert response.status_code == 200, response.text
    return [(result["outcome"], result["code"]) for result in response.json()["results"]]


def test_zip_members_each_get_an_outcome(base: str, client: httpx.Client) -> None:
    png = io.BytesIO()
    Image.new("L", (8, 8)).save(png, format="PNG")
    dicom = ct_variant(1)
    archive = zipped(
        [
            ("study/a.dcm", dicom),
            ("../../etc/evil.dcm", ct_variant(2)),
            ("/abs/path.dcm", ct_variant(3)),
            ("C:\\windows\\x.dcm", ct_variant(4)),
            ("inner.zip", zipped([("x.dcm", ct_variant(5))])),
            ("DICOMDIR", bundled("DICOMDIR")),
            ("notes.txt", b"hello"),
            ("image.png", png.getvalue()),
            ("cut.dcm", dicom[:2000]),
            ("cut-pixels.dcm", dicom[:-5000]),
            ("sr.dcm", bundled("test-SR.dcm")),
            ("again.dcm", dicom),
            ("same-uid-other-content.dcm", ct_variant(1, InstanceNumber=99)),
            ("jpeg12.dcm", bundled("JPGExtended.dcm")),
        ]
    )
    assert upload_zip(client, base, "zipped", archive) == [
        ("accepted", None),
        ("refused", "unsafe_name"),
        ("refused", "unsafe_name"),
        ("refused", "unsafe_name"),
        ("refused", "nested_archive"),
        ("refused", "dicomdir"),
        ("refused", "not_dicom"),
        ("refused", "not_dicom"),
        ("refused", "missing_required"),  # cut between elements: only the missing UIDs show it
        ("refused", "truncated"),
        ("refused", "no_pixel_data"),
        ("duplicate", None),
        ("refused", "duplicate_in_upload"),
        ("refused", "unsupported_transfer_syntax"),
    ]
    studies = client.get(f"{base}/ingest/v1/projects/zipped/studies").json()["studies"]
    assert [(s["instances"], s["images"]) for s in studies] == [(1, 1)]  # nothing of the refused ones stored


def test_encrypted_members_and_zip_bombs_are_refused(base: str, client: httpx.Client) -> None:
    assert upload_zip(client, base, "enc", encrypted_flag(zipped([("a.dcm", ct_variant(6))]))) == [
        ("refused", "encrypted_member")
    ]
    bomb = zipped([("zeros.dcm", bytes(40 * 1024**2))])
    assert len(bomb) < LIMIT
    assert upload_zip(client, base, "bomb", bomb) == [("refused", "zip_bomb")]
    assert upload_zip(client, base, "bomb", b"PK\x03\x04 not really a zip") == [("refused", "not_zip")]


def test_body_over_the_limit_is_413_and_wrong_types_415(base: str, client: httpx.Client) -> None:
    response = client.post(
        f"{base}/ingest/v1/projects/big/instances",
        content=bytes(LIMIT + 1),
        headers={"content-type": "application/dicom"},
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload-too-large"

    def chunks() -> Iterator[bytes]:  # no content-length: the streamed count must stop it
        for _ in range(LIMIT // 1024**2 + 2):
            yield bytes(1024**2)

    streamed = client.post(
        f"{base}/ingest/v1/projects/big/instances", content=chunks(), headers={"content-type": "application/zip"}
    )
    assert streamed.status_code == 413
    assert client.post(f"{base}/ingest/v1/projects/big/instances", content=b"x").status_code == 415


def test_absurd_dimensions_refused_from_the_header(base: str, client: httpx.Client) -> None:
    huge = ct_variant(7, Rows=16000, Columns=16000, NumberOfFrames=1000)
    response = client.post(
        f"{base}/ingest/v1/projects/huge/instances", content=huge, headers={"content-type": "application/dicom"}
    )
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["code"] == "absurd_dimensions"
    job = httpx.get(f"{base}/ingest/v1/jobs/{detail['job_id']}").json()
    assert job["job"]["refused"] == 1 and job["results"][0]["code"] == "absurd_dimensions"


def test_quarantined_instances_wait_for_release(base: str, client: httpx.Client) -> None:
    files = [
        ("files", ("u.dcm", ct_variant(20, Modality="US"), "application/dicom")),
        ("files", ("b.dcm", ct_variant(21, BurnedInAnnotation="YES"), "application/dicom")),
        ("files", ("ok.dcm", ct_variant(22, Modality="US", BurnedInAnnotation="NO"), "application/dicom")),
    ]
    response = client.post(f"{base}/ingest/v1/projects/review/instances", files=files)
    body = response.json()
    assert [r["outcome"] for r in body["results"]] == ["quarantined", "quarantined", "accepted"]
    assert body["job"]["quarantined"] == 2 and body["job"]["status"] == "completed"
    wait_for(lambda: image_page(client, base, "review")["total"] == 1)
    waiting = client.get(f"{base}/ingest/v1/projects/review/quarantine").json()["instances"]
    assert len(waiting) == 2 and all(item["reason"] for item in waiting)
    first = waiting[0]["instance_id"]
    released = client.post(f"{base}/ingest/v1/projects/review/quarantine/{first}/release").json()
    assert released == {"instance_id": first, "released_images": 1, "released_by": "local"}
    wait_for(lambda: image_page(client, base, "review")["total"] == 2)
    again = client.post(f"{base}/ingest/v1/projects/review/quarantine/{first}/release").json()
    assert again["released_images"] == 0
    assert len(client.get(f"{base}/ingest/v1/projects/review/quarantine").json()["instances"]) == 1
    unknown = "00000000-0000-4000-8000-000000000000"
    missing = client.post(f"{base}/ingest/v1/projects/review/quarantine/{unknown}/release")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "instance-not-found"
    elsewhere = client.post(f"{base}/ingest/v1/projects/other/quarantine/{waiting[1]['instance_id']}/release")
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["code"] == "instance-not-found"
    malformed = client.post(f"{base}/ingest/v1/projects/review/quarantine/nope/release")
    assert malformed.status_code == 422 and malformed.json()["error"]["details"][0]["field"] == "path.instance_id"


def test_jobs_can_be_polled_and_resubmission_is_harmless(base: str, client: httpx.Client) -> None:
    files = [("files", ("a.dcm", ct_variant(30), "application/dicom"))]
    first = client.post(f"{base}/ingest/v1/projects/poll/instances", files=files).json()
    second = client.post(f"{base}/ingest/v1/projects/poll/instances", files=files).json()
    assert first["results"][0]["outcome"] == "accepted" and second["results"][0]["outcome"] == "duplicate"
    assert first["results"][0]["image_ids"] == second["results"][0]["image_ids"]
    job = client.get(f"{base}/ingest/v1/jobs/{first['job']['id']}").json()
    assert job["job"]["accepted"] == 1 and job["results"][0]["image_ids"] == first["results"][0]["image_ids"]
    assert job["job"]["submitted_by"] == first["job"]["submitted_by"] == "local"  # the caller, never the body
    missing = client.get(f"{base}/ingest/v1/jobs/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job-not-found"
    assert client.get(f"{base}/ingest/v1/jobs/unknown").status_code == 422


def test_project_settings_choose_dates_and_window(base: str, client: httpx.Client, tmp_path: Path) -> None:
    assert client.get(f"{base}/ingest/v1/projects/window/settings").json()["date_policy"] == "shift"
    chosen = {"date_policy": "remove", "window_center": 40.0, "window_width": 400.0, "keep_original_uids": False}
    assert client.put(f"{base}/ingest/v1/projects/window/settings", json=chosen).json() == chosen
    assert client.get(f"{base}/ingest/v1/projects/window/settings").json() == chosen
    half = client.put(f"{base}/ingest/v1/projects/window/settings", json={"window_center": 40.0})
    assert half.status_code == 422 and half.json()["error"]["code"] == "invalid-window"
