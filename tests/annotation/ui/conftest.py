"""A running annotation + ingest process with a project, two ingested DICOM images and an open round."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.data import get_testdata_file

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.settings import Settings
from tests.e2e.helpers import image_page, wait_for

CLASSES = [{"name": "ground-glass", "colour": "#00c850"}, {"name": "consolidation", "colour": "#e6194b"}]


@dataclass(frozen=True)
class Running:
    base: str
    http: httpx.Client
    app: Any


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("ui"), api_keys=[])
    app = build_app(settings, ["annotation", "ingest"], consume=True, migrate=True)
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        yield Running(base, http, app)


def labelling_project(running: Running, name: str, *, lease_seconds: int = 900) -> list[str]:
    """Create ``name``, ingest CT_small and MR_small through the ingest API, start the cold-start round."""
    http = running.http
    settings = {"classes": CLASSES, "initial_labels": 2, "candidates": 2, "batch": 1, "lease_seconds": lease_seconds}
    created = http.post("/annotation/v1/projects", json={"name": name, "settings": settings})
    assert created.status_code == 201, created.text
    files = [
        ("files", (f"{sample}.dcm", Path(str(get_testdata_file(f"{sample}.dcm"))).read_bytes(), "application/dicom"))
        for sample in ("CT_small", "MR_small")
    ]
    uploaded = http.post(f"/ingest/v1/projects/{name}/instances", files=files)
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["summary"]["accepted"] == 2
    page = wait_for(lambda: (p := image_page(http, running.base, name))["total"] == 2 and p)
    started = http.post(f"/annotation/v1/projects/{name}/rounds")
    assert started.status_code == 201, started.text
    return [image["id"] for image in page["images"]]
