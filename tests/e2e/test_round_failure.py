"""A round whose training fails is seen by everyone who waits for it, and a person retries it.

Embedded mode, every service in one process: a labelled mask is corrupted in object storage after
it was submitted (as a broken disk or a bad restore would), so a committee member's data cannot be
decoded. The trainer announces `round.failed.v1`; annotation's rounds and status, the trainer's jobs
(what the model page shows) and MONAI Label's train status all report it with a reason that names
the image. The radiologist re-draws that mask and retries the round: attempt 2 trains a model.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from medal.app import build_app
from medal.demo.dicom_wrap import wrap_dataset
from medal.local_server import serve_in_thread
from medal.settings import SERVICE_NAMES, Settings
from tests.e2e.helpers import wait_for
from tests.e2e.test_loop_distributed import SETTINGS, synthetic_dataset

PROJECT = "failing"


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_a_failed_round_is_shown_everywhere_and_retried_after_the_mask_is_fixed(tmp_path: Path) -> None:
    synthetic_dataset(tmp_path / "data", count=8)
    slices = wrap_dataset(tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "state", api_keys=[], trainer_threads=1)
    project_settings = {**SETTINGS, "label_budget": 4, "training": {**SETTINGS["training"], "max_epochs": 2}}
    app = build_app(settings, SERVICE_NAMES, consume=True, migrate=True)
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=120) as http:
        annotation = f"/annotation/v1/projects/{PROJECT}"
        created = http.post("/annotation/v1/projects", json={"name": PROJECT, "settings": project_settings})
        assert created.status_code == 201, created.text
        files = [("files", (f"s{n}.dcm", s.dicom, "application/dicom")) for n, s in enumerate(slices)]
        ingested = http.post(f"/ingest/v1/projects/{PROJECT}/instances", files=files)
        assert ingested.status_code == 200, ingested.text
        masks = {r["image_ids"][0]: slices[r["index"]].mask_path.read_bytes() for r in ingested.json()["results"]}
        wait_for(lambda: http.get(annotation).json().get("images") == len(slices), seconds=60)
        assert http.post(f"{annotation}/rounds").status_code == 201

        # Label the round; the first submitted mask is then corrupted where it is stored.
        broken: str | None = None
        while (task := http.post(f"{annotation}/tasks/lease").json()["task"]) is not None:
            saved = http.post(
                f"/annotation/v1/tasks/{task['task_id']}/mask",
                content=masks[task["image_id"]],
                headers={"content-type": "image/png", "X-Lease-Token": task["lease_token"]},
            )
            assert saved.status_code == 200, saved.text
            if broken is None:
                broken = task["image_id"]
                stored = http.get(f"/annotation/v1/images/{broken}/mask").content
                [path] = settings.objects_dir.rglob(f"{hashlib.sha256(stored).hexdigest()}*")
                path.write_bytes(b"\x89PNG\r\n\x1a\n this is no longer a PNG")
        assert broken is not None

        def failed_round() -> dict[str, Any] | None:
            rounds = http.get(f"{annotation}/rounds").json()
            return next((r for r in rounds if r["state"] == "training-failed"), None)

        failed = wait_for(failed_round, seconds=240, interval=0.5)
        assert failed["failure"]["code"] == "bad-training-data"
        assert broken in failed["failure"]["reason"] and failed["attempt"] == 1
        # The project's status and the next lease say so, instead of waiting for a model forever.
        status = http.get(f"{annotation}/status").json()
        assert status["failure"]["round_id"] == failed["id"]
        lease = http.post(f"{annotation}/tasks/lease").json()
        assert lease["status"] == "training-failed" and broken in lease["failure"]["reason"]
        # The model page's API (the trainer's rounds and jobs) and MONAI Label's train status.
        trainer = http.get(f"/trainer/v1/projects/{PROJECT}/jobs").json()
        [trained_round] = [r for r in trainer["rounds"] if r["id"] == failed["id"]]
        assert trained_round["state"] == "failed" and trained_round["failure_code"] == "bad-training-data"
        assert broken in trained_round["failure_reason"]
        monai = http.get(f"/annotation/monailabel/{PROJECT}/train/").json()
        assert monai["status"] == "ERROR" and broken in " ".join(monai["details"])
        assert http.get(f"/trainer/v1/projects/{PROJECT}/models").json()["versions"] == []

        # The radiologist re-draws the broken mask (a new version) and retries the round.
        current = http.get(f"/annotation/v1/images/{broken}/mask")
        redrawn = np.array(Image.open(io.BytesIO(masks[broken])))
        redrawn[0, 0] = 1 - redrawn[0, 0]
        fixed = http.put(
            f"/annotation/v1/images/{broken}/mask",
            content=_png(redrawn),
            headers={"content-type": "image/png", "If-Match": current.headers["etag"]},
        )
        assert fixed.status_code == 200, fixed.text
        retried = http.post(f"{annotation}/rounds/{failed['id']}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["attempt"] == 2 and retried.json()["failure"] is None

        versions = wait_for(lambda: http.get(f"/trainer/v1/projects/{PROJECT}/models").json()["versions"], seconds=240)
        assert len(versions) == 1 and versions[0]["round_id"] == failed["id"]
        trainer = http.get(f"/trainer/v1/projects/{PROJECT}/jobs").json()
        [trained_round] = [r for r in trainer["rounds"] if r["id"] == failed["id"]]
        assert (trained_round["state"], trained_round["attempt"], trained_round["failure_code"]) == (
            "trained",
            2,
            None,
        )
        wait_for(lambda: http.get(f"/annotation/monailabel/{PROJECT}/train/").json()["status"] == "DONE")
        rounds = http.get(f"{annotation}/rounds").json()
        [done] = [r for r in rounds if r["id"] == failed["id"]]
        assert done["state"] == "completed" and done["failure"] is None
        # A retry of a round that did not fail is refused.
        again = http.post(f"{annotation}/rounds/{failed['id']}/retry")
        assert again.status_code == 409 and again.json()["error"]["code"] == "round-not-failed"
