"""Fixtures for ingest tests: a platform on a temporary directory, canary datasets, the samples."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from medal.db.migrate import upgrade
from medal.platform import Platform
from medal.settings import Settings
from tests.conftest import CI, SHARED

SAMPLES = SHARED / "data" / "dicom-samples"
SECRET = b"test-secret"


def bundled(name: str) -> bytes:
    return Path(str(get_testdata_file(name))).read_bytes()


def ct_dataset() -> Dataset:
    return pydicom.dcmread(io.BytesIO(bundled("CT_small.dcm")))


def encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def samples_dir() -> Path:
    """../shared/data/dicom-samples: required under CI=true, skipped on a laptop without it."""
    if not (SAMPLES / "manifest.csv").is_file():
        if CI:
            pytest.fail(f"{SAMPLES} is required under CI=true")
        pytest.skip(f"{SAMPLES} not available")
    return SAMPLES


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    settings = Settings(data_dir=tmp_path / "medal", api_keys=[])
    settings.data_dir.mkdir(parents=True)
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    built = Platform.build(settings, ["ingest"])
    try:
        yield built
    finally:
        built.bus.close()
        await built.db.dispose()
