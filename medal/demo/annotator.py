"""A simulated radiologist: labels leased tasks over the REST API with the ground-truth masks, and
measures each new model version on the held-out test split through the inference API."""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from medal.simulate.metrics import segmentation_scores


class DemoError(RuntimeError):
    pass


@dataclass(frozen=True)
class RoundScore:
    version: int
    labels: int
    miou: float
    f1: float
    per_class_iou: dict[str, float]
    validation_dice: float
    elapsed: float


def check(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 300:
        raise DemoError(f"{what} failed: HTTP {response.status_code} {response.text[:300]}")
    return response.json() if response.headers.get("content-type", "").startswith("application/json") else None


class SimulatedAnnotator:
    """Acts as whoever ``http`` signs in as (its API key, or the local user): the server names the author."""

    def __init__(self, http: httpx.Client, project: str, masks: dict[str, Path]) -> None:
        self.http = http
        self.project = project
        self.masks = masks  # image id → ground-truth mask PNG
        self.submitted = 0
        self.failure: dict[str, Any] | None = None  # the round failure the last lease answer named

    def label_available(self) -> str:
        """Label every task on offer; returns why it stopped (waiting-for-model, training-failed, done …)."""
        while True:
            body = check(
                self.http.post(f"/annotation/v1/projects/{self.project}/tasks/lease"),
                "lease",
            )
            task = body["task"]
            if task is None:
                self.failure = body.get("failure")
                return str(body["status"])
            check(
                self.http.post(
                    f"/annotation/v1/tasks/{task['task_id']}/mask",
                    content=self.masks[task["image_id"]].read_bytes(),
                    headers={"content-type": "image/png", "X-Lease-Token": task["lease_token"]},
                ),
                "submit mask",
            )
            self.submitted += 1


def evaluate(
    http: httpx.Client,
    project: str,
    model: dict[str, Any],
    test_masks: dict[str, Path],
    class_names: tuple[str, ...],
    started: float,
) -> RoundScore:
    truths, predictions = [], []
    for image_id, mask_path in test_masks.items():
        body = check(
            http.post(
                f"/inference/v1/projects/{project}/predict",
                json={"image_id": image_id, "model_version_id": model["id"]},
            ),
            "predict",
        )
        predicted = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_png_base64"]))))
        truths.append(np.asarray(Image.open(mask_path)).ravel())
        predictions.append(predicted.ravel())
    scores = segmentation_scores(np.concatenate(truths), np.concatenate(predictions), class_names)
    return RoundScore(
        model["version"],
        model["labels"],
        scores.mean_iou,
        scores.mean_f1,
        scores.iou,
        model["validation_dice"],
        time.perf_counter() - started,
    )


def wait_for(probe: Any, seconds: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(interval)
