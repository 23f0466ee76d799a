"""Orthanc sends to medal by C-STORE: one job per association, per-instance outcomes, strangers rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from medal.app import build_app
from medal.local_server import free_port, serve_in_thread
from medal.settings import Settings
from tests.conftest import port_open
from tests.pacs.conftest import Medal, instance
from tests.pacs.orthanc import Orthanc


def send(orthanc: Orthanc, studies: list[Any]) -> Any:
    return orthanc.post("/modalities/medal/store", {"Resources": studies, "Synchronous": True})


def test_orthanc_pushes_a_study_and_the_job_lists_each_instance(orthanc: Orthanc, medal: Medal) -> None:
    study = None
    for number in (1, 2, 3):
        study = orthanc.upload(instance(10, 1, number))["ParentStudy"]
    assert orthanc.post("/modalities/medal/echo", {}).status_code == 200
    response = send(orthanc, [study])
    assert response.status_code == 200, response.text
    (report,) = medal.jobs("dimse")
    assert report["project"] == "pacs" and report["job"]["submitted_by"] == "aet:ORTHANC"
    assert [r["outcome"] for r in report["results"]] == ["accepted"] * 3
    assert report["job"]["status"] == "completed" and report["job"]["accepted"] == 3
    again = send(orthanc, [study])
    assert again.status_code == 200
    assert [r["outcome"] for r in medal.jobs("dimse")[-1]["results"]] == ["duplicate"] * 3


def test_a_non_image_sop_class_is_refused_and_reported(orthanc: Orthanc, medal: Medal) -> None:
    before = len(medal.jobs("dimse"))
    study = orthanc.upload(instance(11, 1, 1, "test-SR.dcm"))["ParentStudy"]
    response = send(orthanc, [study])
    assert response.status_code != 200 or response.json().get("FailedInstancesCount", 0) == 1
    report = medal.jobs("dimse")[before]
    assert [(r["outcome"], r["code"]) for r in report["results"]] == [("refused", "no_pixel_data")]


def associate(ae_title: str, port: int, bind: str = "127.0.0.1") -> Any:
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    return ae.associate("127.0.0.1", port, ae_title="MEDAL", bind_address=(bind, 0))


def test_unknown_ae_titles_addresses_and_called_titles_are_rejected(medal: Medal) -> None:
    port = medal.settings.dimse_port
    stranger = associate("STRANGER", port)
    assert stranger.is_rejected and not stranger.is_established
    elsewhere = associate("ORTHANC", port, bind="127.0.0.2")
    assert elsewhere.is_rejected
    ae = AE(ae_title="ORTHANC")
    ae.add_requested_context(Verification)
    wrong_called = ae.associate("127.0.0.1", port, ae_title="NOT-MEDAL")
    assert wrong_called.is_rejected
    known = associate("ORTHANC", port)
    assert known.is_established
    assert known.send_c_echo().Status == 0x0000
    known.release()


def test_medal_serve_ingest_runs_the_scp_and_stops_it(tmp_path: Path) -> None:
    port = free_port()
    peers = ["ORTHANC@127.0.0.1=served"]
    settings = Settings(data_dir=tmp_path, api_keys=[], dimse_enabled=True, dimse_port=port, dimse_peers=peers)
    # `medal serve ingest` builds this app: a service without a queue runs its background tasks there.
    app = build_app(settings, ["ingest"], consume=False, migrate=True)
    with serve_in_thread(app):
        known = associate("ORTHANC", port)
        assert known.is_established
        known.release()
    assert not port_open("127.0.0.1", port)
