"""The whole active-learning loop in embedded mode: one process, SQLite, a directory, the in-process bus."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from medal.app import build_app
from medal.demo.dicom_wrap import wrap_dataset
from medal.local_server import serve_in_thread
from medal.settings import SERVICE_NAMES, Settings
from tests.e2e.test_loop_distributed import drive_loop, synthetic_dataset


@pytest.mark.slow
def test_whole_loop_embedded(tmp_path: Path) -> None:
    synthetic_dataset(tmp_path / "data")
    slices = wrap_dataset(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "state", api_keys=[], trainer_threads=1)
    with serve_in_thread(build_app(settings, SERVICE_NAMES, consume=True, migrate=True)) as base:
        url = dict.fromkeys(("ingest", "annotation", "trainer", "inference"), base)
        with httpx.Client(timeout=120) as http:
            jobs = drive_loop(http, url, slices)
    assert all(job["attempts"] == 1 for job in jobs)
