"""Fixtures of the PACS tests: an Orthanc process, and medal (ingest with its C-STORE SCP) beside it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import create_engine, text

from medal.app import build_app
from medal.local_server import free_port, serve_in_thread
from medal.settings import Settings
from tests.pacs.orthanc import ORTHANC_AET, Orthanc

PROJECT = "pacs"


def instance(study: int, series: int, number: int, name: str = "CT_small.dcm") -> bytes:
    """A bundled test file under UIDs of our own (study/series/instance numbers), with a patient name."""
    ds = pydicom.dcmread(str(get_testdata_file(name)))
    root = "1.2.826.0.1.3680043.10.998"
    ds.StudyInstanceUID = f"{root}.{study}"
    ds.SeriesInstanceUID = f"{root}.{study}.{series}"
    ds.SOPInstanceUID = f"{root}.{study}.{series}.{number}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = "Canary^Patient"
    ds.PatientID = f"CANARY-{study}"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@dataclass
class Medal:
    url: str
    settings: Settings

    def jobs(self, source: str) -> list[dict[str, Any]]:
        engine = create_engine(f"sqlite:///{self.settings.data_dir / 'medal.db'}")
        with engine.connect() as conn:
            ids = [row[0] for row in conn.execute(text("select id from ingest_jobs where source = :s"), {"s": source})]
        engine.dispose()
        return [httpx.get(f"{self.url}/ingest/v1/jobs/{job}").json() for job in ids]

    def wait(self, job_id: str, seconds: float = 60) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            report: dict[str, Any] = httpx.get(f"{self.url}/ingest/v1/jobs/{job_id}").json()
            if report["job"]["status"] == "completed":
                return report
            time.sleep(0.2)
        raise TimeoutError("the job did not complete")


@pytest.fixture(scope="module")
def scp_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory, scp_port: int) -> Iterator[Orthanc]:
    pacs = Orthanc(tmp_path_factory.mktemp("orthanc"), modalities={"medal": ("MEDAL", "127.0.0.1", scp_port)})
    pacs.start()
    try:
        yield pacs
    finally:
        pacs.stop()


@pytest.fixture(scope="module")
def medal(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc, scp_port: int) -> Iterator[Medal]:
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("medal")),
        api_keys=[],
        dimse_enabled=True,
        dimse_port=scp_port,
        dimse_peers=[f"{ORTHANC_AET}@127.0.0.1={PROJECT}"],
        dicomweb_allowed_urls=[orthanc.dicomweb],
        dicomweb_timeout_seconds=10,
    )
    with serve_in_thread(build_app(settings, ["ingest"], consume=True, migrate=True)) as url:
        yield Medal(url, settings)
