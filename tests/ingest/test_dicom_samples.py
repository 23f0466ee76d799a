"""Every file of ../shared/data/dicom-samples goes through ingest with a recorded outcome.

The outcome per file (accepted, quarantined, duplicate, refused + code, and the image count) is
checked in as ``dicom_samples_outcomes.csv``; a change in behaviour shows up as a diff of that
table. Regenerate it deliberately with ``MEDAL_WRITE_OUTCOMES=1 pytest tests/ingest/test_dicom_samples.py``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from medal.platform import Platform
from services.ingest.jobs import Submission
from tests.ingest.conftest import samples_dir

TABLE = Path(__file__).with_name("dicom_samples_outcomes.csv")
FIELDS = ["path", "outcome", "code", "images"]


async def test_every_sample_file_has_its_recorded_outcome(platform: Platform) -> None:
    root = samples_dir()
    with (root / "manifest.csv").open(newline="") as manifest:
        paths = [row["path"] for row in csv.DictReader(manifest)]
    assert len(paths) == 505
    submission = Submission(platform, "samples", "upload", "local")
    await submission.start()
    observed: list[dict[str, str]] = []
    for path in paths:
        result = await submission.add((root / path).read_bytes())
        observed.append(
            {"path": path, "outcome": result.outcome, "code": result.code or "", "images": str(len(result.image_ids))}
        )
    job = (await submission.finish()).job
    assert job.total == 505 and job.accepted + job.quarantined + job.duplicates + job.refused == 505
    refused_without_reason = [row["path"] for row in observed if row["outcome"] == "refused" and not row["code"]]
    assert refused_without_reason == []
    if os.environ.get("MEDAL_WRITE_OUTCOMES") == "1":
        with TABLE.open("w", newline="") as table:
            writer = csv.DictWriter(table, FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(observed)
        pytest.skip(f"wrote {TABLE.name}; review the diff and commit it")
    with TABLE.open(newline="") as table:
        expected = list(csv.DictReader(table))
    differences = [(e, o) for e, o in zip(expected, observed, strict=True) if e != o]
    assert differences == []
