"""dicomweb-client reads a project from medal; medal pushes it to Orthanc; original UIDs for admins only."""

from __future__ import annotations

import httpx
from dicomweb_client.api import DICOMwebClient

from tests.pacs.conftest import PROJECT, Medal, instance
from tests.pacs.orthanc import Orthanc

ROOT = "1.2.826.0.1.3680043.10.998.30"


def upload(medal: Medal, data: bytes, project: str = PROJECT) -> dict[str, object]:
    headers = {"content-type": "application/dicom"}
    response = httpx.post(f"{medal.url}/ingest/v1/projects/{project}/instances", content=data, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_dicomweb_client_reads_the_deidentified_project(medal: Medal) -> None:
    upload(medal, instance(30, 1, 1))
    upload(medal, instance(30, 1, 2))
    client = DICOMwebClient(url=f"{medal.url}/ingest/dicomweb/{PROJECT}")
    studies = client.search_for_studies(search_filters={"PatientID": ""})
    assert studies and all(study["0020000D"]["Value"][0].startswith("2.25.") for study in studies)
    assert "Canary" not in str(studies) and "CANARY" not in str(studies) and ROOT not in str(studies)
    study_uid = next(s["0020000D"]["Value"][0] for s in studies if s["00201208"]["Value"] == [2])
    (series,) = client.search_for_series(study_uid)
    series_uid = series["0020000E"]["Value"][0]
    listed = client.search_for_instances(study_uid, series_uid)
    sop_uid = listed[0]["00080018"]["Value"][0]
    metadata = client.retrieve_instance_metadata(study_uid, series_uid, sop_uid)
    assert metadata["00100010"]["Value"][0]["Alphabetic"].startswith("medal^") and "7FE00010" not in metadata
    retrieved = client.retrieve_instance(study_uid, series_uid, sop_uid)
    assert retrieved.SOPInstanceUID == sop_uid and retrieved.PatientIdentityRemoved == "YES"
    (frame,) = client.retrieve_instance_frames(study_uid, series_uid, sop_uid, frame_numbers=[1])
    assert len(frame) == retrieved.Rows * retrieved.Columns * retrieved.BitsAllocated // 8
    assert len(client.retrieve_study(study_uid)) == 2
    missing = httpx.get(f"{medal.url}/ingest/dicomweb/{PROJECT}/studies/1.2.3/metadata")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "dicomweb-not-found"
    assert httpx.get(f"{medal.url}/ingest/dicomweb/other/studies").json() == []


def test_push_sends_the_deidentified_instances_to_orthanc(orthanc: Orthanc, medal: Medal) -> None:
    report = upload(medal, instance(31, 1, 1), project="push")
    pushed = httpx.post(
        f"{medal.url}/ingest/v1/projects/push/pushes", json={"stow": orthanc.dicomweb}, timeout=60
    ).json()
    assert pushed["sent"] == 1 and pushed["failed"] == 0
    assert pushed["results"][0]["instance_id"] == report["results"][0]["instance_id"]  # type: ignore[index]
    found = httpx.post(f"{orthanc.url}/tools/find", json={"Level": "Instance", "Query": {"PatientName": "medal^*"}})
    tags = [orthanc.get(f"/instances/{oid}/simplified-tags") for oid in found.json()]
    assert any(t["SOPInstanceUID"].startswith("2.25.") and t["PatientIdentityRemoved"] == "YES" for t in tags)
    refused = httpx.post(f"{medal.url}/ingest/v1/projects/push/pushes", json={"stow": "http://10.0.0.1/x"})
    assert refused.status_code == 403


def test_original_uids_are_kept_only_when_an_admin_turns_it_on(medal: Medal) -> None:
    settings = f"{medal.url}/ingest/v1/projects/uids/settings"
    resolve = f"{medal.url}/ingest/v1/projects/uids/original-uids"
    first = upload(medal, instance(32, 1, 1), project="uids")["results"][0]  # type: ignore[index]
    client = DICOMwebClient(url=f"{medal.url}/ingest/dicomweb/uids")
    (study,) = client.search_for_studies()
    (listed,) = client.search_for_instances(study["0020000D"]["Value"][0])
    sop = listed["00080018"]["Value"][0]
    assert first["outcome"] == "accepted"
    off = httpx.post(resolve, json={"sop_uids": [sop]})
    assert off.status_code == 412 and off.json()["error"]["code"] == "original-uids-off"
    assert httpx.put(settings, json={"keep_original_uids": True}).json()["keep_original_uids"] is True
    unknown = httpx.post(resolve, json={"sop_uids": [sop]})
    assert unknown.status_code == 404  # ingested before the option: no record until it is sent again
    assert upload(medal, instance(32, 1, 1), project="uids")["results"][0]["outcome"] == "duplicate"  # type: ignore[index]
    (found,) = httpx.post(resolve, json={"sop_uids": [sop], "purpose": "seg-export"}).json()["instances"]
    assert found["original_sop_uid"] == "1.2.826.0.1.3680043.10.998.32.1.1"
    assert found["original_study_uid"] == "1.2.826.0.1.3680043.10.998.32"
