"""DICOMweb STOW-RS: boundary from the header, per-instance results, PS3.18 status codes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.settings import Settings
from tests.ingest.conftest import bundled, ct_dataset, encode

BOUNDARY = "0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1"  # the one dicomweb-client always sends


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("stow"), api_keys=[], max_upload_bytes=4 * 1024**2)
    app = build_app(settings, ["ingest"], consume=False, migrate=True)
    with serve_in_thread(app) as url:
        yield url


def related(parts: list[tuple[str, bytes]], boundary: str = BOUNDARY) -> bytes:
    body = b""
    for content_type, data in parts:
        body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def stow(base: str, body: bytes, content_type: str | None = None) -> httpx.Response:
    header = content_type or f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    return httpx.post(f"{base}/ingest/dicomweb/stow/studies", content=body, headers={"content-type": header})


def instance(number: int) -> bytes:
    ds = ct_dataset()
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.997.{number}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return encode(ds)


def test_all_stored_is_200_with_deidentified_references(base: str) -> None:
    response = stow(base, related([("application/dicom", instance(1)), ("application/dicom", instance(2))]))
    assert response.status_code == 200 and response.headers["content-type"] == "application/dicom+json"
    references = response.json()["00081199"]["Value"]
    uids = [item["00081155"]["Value"][0] for item in references]
    assert len(uids) == 2 and all(uid.startswith("2.25.") for uid in uids)
    assert {item["00081150"]["Value"][0] for item in references} == {"1.2.840.10008.5.1.4.1.1.2"}
    assert "1.2.826.0.1.3680043.10.997" not in response.text
    again = stow(base, related([("application/dicom", instance(1))]))
    assert again.status_code == 200 and again.json()["00081199"]["Value"][0]["00081155"]["Value"] == uids[:1]


def test_partial_failure_is_202_and_total_failure_409(base: str) -> None:
    mixed = stow(base, related([("application/dicom", instance(3)), ("application/dicom", b"garbage")]))
    assert mixed.status_code == 202
    assert mixed.json()["00081198"]["Value"] == [{"00081197": {"vr": "US", "Value": [0xC000]}}]
    failed = stow(base, related([("application/dicom", bundled("test-SR.dcm")), ("text/plain", b"x")]))
    assert failed.status_code == 409
    assert [item["00081197"]["Value"][0] for item in failed.json()["00081198"]["Value"]] == [0x0122, 0xC000]


def test_boundary_media_type_and_size_errors(base: str) -> None:
    other = uuid.uuid4().hex
    body = related([("application/dicom", instance(4))], boundary=other)
    ok = stow(base, body, f'multipart/related; type="application/dicom"; boundary="{other}"')
    assert ok.status_code == 200
    assert stow(base, body, "application/dicom").status_code == 415
    assert stow(base, body, f"multipart/related; type=application/pdf; boundary={other}").status_code == 415
    assert stow(base, body, 'multipart/related; type="application/dicom"').status_code == 400
    assert stow(base, b"--nothing here", None).status_code == 400
    big = related([("application/dicom", bytes(5 * 1024**2))])
    assert stow(base, big).status_code == 413
