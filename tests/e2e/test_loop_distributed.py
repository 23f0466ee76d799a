"""The whole active-learning loop with every service its own OS process, over PostgreSQL, RabbitMQ
and an S3 server: ingest → rounds labelled over REST → two trainer workers (one SIGKILLed while it
trains) → pool scoring and selection → next round → auto-labelling → export."""

from __future__ import annotations

import csv
import io
import json
import signal
import socket
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from medal.demo.dicom_wrap import wrap_dataset
from medal.local_server import free_port
from tests.e2e.helpers import AUTH_HEADERS, wait_for
from tests.e2e.test_distributed import Processes, wait_ready

PROJECT = "loop"
SETTINGS = {
    "classes": [{"name": "lesion", "colour": "#ff0000"}],
    "strategy": "suggestive",
    "candidates": 4,
    "batch": 2,
    "initial_labels": 4,
    "committee": 2,
    "target_dice": 0.999,
    "label_budget": 6,
    "keep_annotators_busy": False,
    "lease_seconds": 120,
    "training": {"image_size": 16, "width": 0.0625, "max_epochs": 12, "patience": 100, "batch_size": 4},
}


def synthetic_dataset(folder: Path, count: int = 12) -> None:
    """Grey 24x24 slices with one bright disc each; the mask is the disc."""
    rng = np.random.default_rng(3)
    rows = []
    for n in range(count):
        split = "test" if n >= count - 2 else "train"
        yy, xx = np.mgrid[:24, :24]
        cy, cx, radius = rng.integers(6, 18), rng.integers(6, 18), rng.integers(3, 6)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        grey = (rng.normal(60, 10, (24, 24)) + disc * 120).clip(0, 255).astype(np.uint8)
        for kind, array in (("images", grey), ("masks", disc.astype(np.uint8))):
            path = folder / kind / split / f"{n}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(path)
        rows.append(
            {"split": split, "id": str(n), "image": f"images/{split}/{n}.png", "mask": f"masks/{split}/{n}.png"}
        )
    with (folder / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["split", "id", "image", "mask"])
        writer.writeheader()
        writer.writerows(rows)


def drive_loop(
    http: httpx.Client,
    url: dict[str, str],
    slices: list[Any],
    on_poll: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Create the project, ingest, label every offered task until the budget is spent and the rest is
    auto-labelled; check one model version per round, no duplicate tasks and a complete export."""
    created = http.post(f"{url['annotation']}/annotation/v1/projects", json={"name": PROJECT, "settings": SETTINGS})
    assert created.status_code == 201, created.text
    files = [("files", (f"s{n}.dcm", s.dicom, "application/dicom")) for n, s in enumerate(slices)]
    ingested = http.post(f"{url['ingest']}/ingest/v1/projects/{PROJECT}/instances", files=files)
    assert ingested.status_code == 200, ingested.text
    masks, held_out = {}, []
    for result in ingested.json()["results"]:
        wrapped = slices[result["index"]]
        image_id = result["image_ids"][0]
        masks[image_id] = wrapped.mask_path.read_bytes()
        if wrapped.split == "test":
            held_out.append(image_id)
    project_url = f"{url['annotation']}/annotation/v1/projects/{PROJECT}"
    wait_for(lambda: http.get(project_url).json().get("images") == len(slices), seconds=60)
    for image_id in held_out:
        http.put(f"{url['annotation']}/annotation/v1/images/{image_id}/held-out", json={"held_out": True})
    assert http.post(f"{project_url}/rounds").status_code == 201
    labelled = 0

    def step() -> bool:
        nonlocal labelled
        while task := http.post(f"{project_url}/tasks/lease").json()["task"]:
            saved = http.post(
                f"{url['annotation']}/annotation/v1/tasks/{task['task_id']}/mask",
                content=masks[task["image_id"]],
                headers={"content-type": "image/png", "X-Lease-Token": task["lease_token"]},
            )
            assert saved.status_code == 200, saved.text
            labelled += 1
        if on_poll is not None:
            on_poll(http.get(f"{url['trainer']}/trainer/v1/projects/{PROJECT}/jobs").json()["jobs"])
        status = http.get(f"{project_url}/status").json()
        return bool(status["done"] and status["autolabel"] and all(j["complete"] for j in status["autolabel"]))

    wait_for(step, seconds=480, interval=0.25)
    status = http.get(f"{project_url}/status").json()
    assert labelled == 6 == status["labels"]
    # One model version per completed round, and every member trained to completion.
    versions = http.get(f"{url['trainer']}/trainer/v1/projects/{PROJECT}/models").json()["versions"]
    rounds = http.get(f"{project_url}/rounds").json()
    completed = [r for r in rounds if r["state"] == "completed"]
    assert len(versions) == len(completed) == 2
    assert len({v["round_id"] for v in versions}) == len(versions)
    jobs: list[dict[str, Any]] = http.get(f"{url['trainer']}/trainer/v1/projects/{PROJECT}/jobs").json()["jobs"]
    assert len(jobs) == 2 * len(completed) and all(j["state"] == "done" for j in jobs)
    # No duplicate tasks: each round asked for distinct images, never one already labelled.
    assert [r["tasks"] for r in rounds] == [4, 2]
    # Auto-labelling covered every unlabelled training image; the export holds them all.
    exported = http.get(f"{project_url}/export", params={"format": "png"})
    summary = json.loads(zipfile.ZipFile(io.BytesIO(exported.content)).read("export.json"))
    assert summary["human"] == 6 and summary["machine"] == len(slices) - len(held_out) - 6
    return jobs


@pytest.mark.slow
def test_whole_loop_across_processes_survives_a_killed_trainer(
    distributed_env: dict[str, str], postgres_url: str, tmp_path: Path
) -> None:
    synthetic_dataset(tmp_path / "data")
    slices = wrap_dataset(tmp_path / "data")
    env = {
        **distributed_env,
        "MEDAL_TRAINER_LEASE_SECONDS": "4",
        "MEDAL_TRAINER_HEARTBEAT_SECONDS": "1",
        "MEDAL_BUS_PREFETCH": "1",
        "MEDAL_TRAINER_THREADS": "1",
    }
    procs = Processes(env, tmp_path)
    try:
        assert procs.run("migrate").returncode == 0
        ports = {name: free_port() for name in ("ingest", "annotation", "trainer", "inference")}
        apis = {name: procs.start(name, "serve", name, port=port) for name, port in ports.items()}
        workers = {name: procs.start(f"{name}-worker", "worker", name) for name in ("annotation", "query", "inference")}
        trainers = [procs.start(f"trainer-worker-{n}", "worker", "trainer") for n in (1, 2)]
        url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        with httpx.Client(timeout=120, headers=AUTH_HEADERS) as http:
            for name, process in apis.items():
                wait_ready(http, url[name], process, name, procs)
            trainer_ids = {f"{socket.gethostname()}:{p.pid}": p for p in trainers}
            killed: list[str] = []

            def kill_a_training_worker(jobs: list[dict[str, Any]]) -> None:
                if killed:
                    return
                for job in jobs:
                    holder = trainer_ids.get(job.get("worker") or "")
                    if job["state"] == "running" and holder is not None:
                        holder.send_signal(signal.SIGKILL)
                        killed.append(job["worker"])
                        return

            jobs = drive_loop(http, url, slices, on_poll=kill_a_training_worker)
            assert killed, "no trainer was caught mid-training"
            assert any(j["attempts"] == 2 for j in jobs), "the killed worker's job was not taken over"
        for process in [*workers.values(), *(p for p in trainers if p.poll() is None)]:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
    finally:
        procs.stop_all()
