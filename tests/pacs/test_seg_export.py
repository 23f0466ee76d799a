"""The whole flow with a real PACS: Orthanc sends a study to medal by C-STORE, a person labels it over REST,
medal sends the SEG objects back by STOW-RS, and Orthanc's own REST API shows them referencing instances it
holds: the de-identified ones in a research archive (the study pushed there first), and with the opt-in
original-UID mode the clinical PACS's original instances."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.settings import Settings
from tests.e2e.helpers import wait_for
from tests.pacs.conftest import instance
from tests.pacs.orthanc import ORTHANC_AET, Orthanc

PROJECT = "seg"
ROOT = "1.2.826.0.1.3680043.10.998.40"
#: Tiny training (as tests/e2e/test_loop_distributed.py): the round trains in seconds beside the export.
SETTINGS = {
    "classes": [{"name": "lesion", "colour": "#ff0000"}],
    "candidates": 3,
    "batch": 1,
    "initial_labels": 3,
    "committee": 2,
    "lease_seconds": 120,
    "auto_label_when_done": False,
    "training": {"image_size": 16, "width": 0.0625, "max_epochs": 2, "patience": 100, "batch_size": 4},
}


@pytest.fixture(scope="module")
def research(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    """A second archive: the research PACS that receives the de-identified studies and their SEG objects."""
    pacs = Orthanc(tmp_path_factory.mktemp("research")).start()
    try:
        yield pacs
    finally:
        pacs.stop()


@pytest.fixture(scope="module")
def medal_all(
    tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc, research: Orthanc, scp_port: int
) -> Iterator[tuple[str, Settings]]:
    """Every service in one process (embedded), the C-STORE SCP mapping Orthanc to the project ``seg``."""
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("medal-seg")),
        api_keys=[],
        dimse_enabled=True,
        dimse_port=scp_port,
        dimse_peers=[f"{ORTHANC_AET}@127.0.0.1={PROJECT}"],
        dicomweb_allowed_urls=[orthanc.dicomweb, research.dicomweb],
        dicomweb_timeout_seconds=20,
    )
    with serve_in_thread(build_app(settings, consume=True, migrate=True)) as url:
        yield url, settings


def _references(pacs: Orthanc) -> list[dict[str, Any]]:
    """Each SEG the archive holds: its study and the SOP Instance UIDs it references."""
    found = httpx.post(f"{pacs.url}/tools/find", json={"Level": "Instance", "Query": {"Modality": "SEG"}}).json()
    segs = []
    for oid in found:
        tags = pacs.get(f"/instances/{oid}/tags?simplify")
        referenced = [
            item["ReferencedSOPInstanceUID"]
            for series in tags["ReferencedSeriesSequence"]
            for item in series["ReferencedInstanceSequence"]
        ]
        segs.append({"study": tags["StudyInstanceUID"], "sop": tags["SOPInstanceUID"], "referenced": referenced})
    return segs


def _held_by(pacs: Orthanc, sop_uid: str) -> dict[str, Any] | None:
    """The instance of that SOP Instance UID in the archive, with its study UID (None when it is not there)."""
    found = httpx.post(f"{pacs.url}/tools/lookup", content=sop_uid).json()
    oid = next((f["ID"] for f in found if f["Type"] == "Instance"), None)
    return None if oid is None else pacs.get(f"/instances/{oid}/simplified-tags")


def _label_every_task(http: httpx.Client, base: str) -> int:
    labelled = 0
    while task := http.post(f"{base}/annotation/v1/projects/{PROJECT}/tasks/lease").json()["task"]:
        mask = np.zeros((task["height"], task["width"]), dtype=np.uint8)
        mask[20 : 40 + labelled * 5, 30:60] = 1
        buffer = io.BytesIO()
        Image.fromarray(mask, mode="L").save(buffer, format="PNG")
        saved = http.post(
            f"{base}/annotation/v1/tasks/{task['task_id']}/mask",
            content=buffer.getvalue(),
            headers={"content-type": "image/png", "X-Lease-Token": task["lease_token"]},
        )
        assert saved.status_code == 200, saved.text
        labelled += 1
    return labelled


def test_cstore_in_label_and_seg_back_to_the_research_and_the_clinical_pacs(
    orthanc: Orthanc, research: Orthanc, medal_all: tuple[str, Settings]
) -> None:
    base, settings = medal_all
    http = httpx.Client(base_url=base, timeout=120)
    assert http.post("/annotation/v1/projects", json={"name": PROJECT, "settings": SETTINGS}).status_code == 201
    keep = http.put(f"/ingest/v1/projects/{PROJECT}/settings", json={"keep_original_uids": True})
    assert keep.status_code == 200, keep.text

    # The clinical PACS sends a three-slice study to medal (C-STORE).
    study = None
    for number in (1, 2, 3):
        study = orthanc.upload(instance(40, 1, number))["ParentStudy"]
    sent = orthanc.post("/modalities/medal/store", {"Resources": [study], "Synchronous": True})
    assert sent.status_code == 200, sent.text
    wait_for(lambda: http.get(f"/annotation/v1/projects/{PROJECT}").json().get("images") == 3, seconds=60)

    # A person labels the cold-start round over REST.
    assert http.post(f"/annotation/v1/projects/{PROJECT}/rounds").status_code == 201
    assert _label_every_task(http, base) == 3

    # Research archive: the de-identified study first, then the SEG objects that reference it.
    pushed = http.post(f"/ingest/v1/projects/{PROJECT}/pushes", json={"stow": research.dicomweb}).json()
    assert pushed["sent"] == 3 and pushed["failed"] == 0
    report = http.post(f"/annotation/v1/projects/{PROJECT}/exports/stow", json={"url": research.dicomweb}).json()
    assert (report["sent"], report["failed"], report["skipped"]) == (3, 0, 0), report
    assert {r["outcome"] for r in report["results"]} == {"sent"} and report["reference"] == "deidentified"
    segs = _references(research)
    assert len(segs) == 3 and {s["sop"] for s in segs} == {r["seg_sop_uid"] for r in report["results"]}
    for seg in segs:
        (referenced,) = seg["referenced"]
        held = _held_by(research, referenced)
        assert held is not None and held["Modality"] == "CT" and held["PatientIdentityRemoved"] == "YES"
        assert held["StudyInstanceUID"] == seg["study"] and referenced.startswith("2.25.")
        assert ROOT not in str(seg)

    # Exporting again resends the same objects (UIDs derive from the mask): no duplicates in the archive.
    again = http.post(f"/annotation/v1/projects/{PROJECT}/exports/stow", json={"url": research.dicomweb}).json()
    assert again["sent"] == 3 and len(_references(research)) == 3

    # Clinical PACS: the opt-in original-UID mode references the instances Orthanc sent us.
    clinical = http.post(
        f"/annotation/v1/projects/{PROJECT}/exports/stow", json={"url": orthanc.dicomweb, "reference": "original"}
    ).json()
    assert (clinical["sent"], clinical["failed"]) == (3, 0), clinical
    assert ROOT not in str(clinical)  # the original UIDs went to the archive only, not into the report
    segs = _references(orthanc)
    assert len(segs) == 3
    for seg in segs:
        (referenced,) = seg["referenced"]
        held = _held_by(orthanc, referenced)
        assert referenced.startswith(f"{ROOT}.1.") and held is not None
        assert held["PatientName"] == "Canary^Patient" and seg["study"] == ROOT

    # Both exports are in the audit trail, the original one recorded before anything left.
    engine = create_engine(f"sqlite:///{settings.data_dir / 'medal.db'}")
    with engine.connect() as conn:
        actions = [
            r[0] for r in conn.execute(text("select action from access_audit where project = :p"), {"p": PROJECT})
        ]
    engine.dispose()
    assert actions.count("seg-exported") == 3 and actions.count("seg-export-original") == 1
    assert actions.index("seg-export-original") < len(actions) - 1

    refused = http.post(f"/annotation/v1/projects/{PROJECT}/exports/stow", json={"url": "http://10.1.2.3/dicom-web"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "dicomweb-url-not-allowed"
