"""DICOMweb pull from Orthanc: by study and by query, per-instance outcomes, re-runs skip, SSRF refused."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.pacs.conftest import PROJECT, Medal, instance
from tests.pacs.orthanc import Orthanc

STUDY = "1.2.826.0.1.3680043.10.998.20"


def pull(medal: Medal, body: dict[str, object], project: str = PROJECT) -> httpx.Response:
    return httpx.post(f"{medal.url}/ingest/v1/projects/{project}/pulls", json=body, timeout=30)


def test_pull_by_study_then_again_skips_what_is_held(orthanc: Orthanc, medal: Medal) -> None:
    for number in (1, 2):
        orthanc.upload(instance(20, 1, number))
    orthanc.upload(instance(20, 2, 1, "test-SR.dcm"))  # half usable: an SR in the same study
    started = pull(medal, {"dicomweb": orthanc.dicomweb, "studies": [STUDY]})
    assert started.status_code == 202, started.text
    report = medal.wait(started.json()["job_id"])
    assert report["job"]["source"] == "pull" and report["job"]["submitted_by"] == "local"
    outcomes = sorted((r["outcome"], r["code"]) for r in report["results"])
    assert outcomes == [("accepted", None), ("accepted", None), ("refused", "no_pixel_data")]
    again = medal.wait(pull(medal, {"dicomweb": orthanc.dicomweb, "studies": [STUDY]}).json()["job_id"])
    assert sorted(r["outcome"] for r in again["results"]) == ["duplicate", "duplicate", "refused"]
    held = {r["instance_id"] for r in report["results"] if r["instance_id"]}
    assert {r["instance_id"] for r in again["results"] if r["instance_id"]} == held


def test_pull_by_query_and_the_cli(orthanc: Orthanc, medal: Medal) -> None:
    orthanc.upload(instance(21, 1, 1))
    query = "ModalitiesInStudy=CT&PatientID=CANARY-21"
    command = [sys.executable, "-m", "medal.cli", "pull", "--dicomweb", orthanc.dicomweb, "--project", PROJECT]
    done = subprocess.run([*command, "--query", query, "--server", medal.url], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "accepted    instance 1" in done.stdout and "1 accepted" in done.stdout
    assert "CANARY" not in done.stdout and "1.2.826.0.1.3680043.10.998" not in done.stdout


def test_a_missing_study_and_a_pacs_that_is_down_are_reported(orthanc: Orthanc, medal: Medal) -> None:
    missing = medal.wait(pull(medal, {"dicomweb": orthanc.dicomweb, "studies": ["1.2.3.4.5"]}).json()["job_id"])
    assert [(r["outcome"], r["code"]) for r in missing["results"]] == [("refused", "not_at_source")]


def test_urls_outside_the_allow_list_and_bad_requests_are_refused(medal: Medal) -> None:
    for url in ("http://169.254.169.254/latest", "http://127.0.0.1:1/dicom-web", "file:///etc/passwd"):
        refused = pull(medal, {"dicomweb": url, "studies": [STUDY]})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "dicomweb-url-not-allowed"
    assert pull(medal, {"dicomweb": "http://x", "studies": [STUDY], "query": {"PatientID": "1"}}).status_code == 422
    assert pull(medal, {"dicomweb": "http://x", "studies": ["not a uid"]}).status_code == 422
    assert pull(medal, {"dicomweb": "http://x", "query": {"Bad Key": "1"}}).status_code == 422
