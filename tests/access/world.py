"""Two real projects built through the API of every service in one process, and a key per role.

alpha and beta each get synthetic CT slices ingested, a cold-start round labelled by the platform
key, a trained (tiny) model, a pool selection and the next round open; then project keys: alpha's
annotator, reviewer and admin, beta's admin. The authorisation matrix and the audit test share it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from medal.app import build_app
from medal.demo.dicom_wrap import wrap_dataset
from medal.local_server import serve_in_thread
from medal.settings import SERVICE_NAMES, Settings
from tests.e2e.helpers import wait_for
from tests.e2e.test_loop_distributed import synthetic_dataset

PLATFORM_KEY = "platform-key-of-the-matrix-tests"
PROJECTS = ("alpha", "beta")
SETTINGS: dict[str, Any] = {
    "classes": [{"name": "lesion", "colour": "#ff0000"}],
    "strategy": "suggestive",
    "candidates": 2,
    "batch": 1,
    "initial_labels": 4,
    "committee": 2,
    "target_dice": 0.999,
    "keep_annotators_busy": False,
    "lease_seconds": 600,
    "training": {"image_size": 16, "width": 0.0625, "max_epochs": 2, "patience": 100, "batch_size": 4},
}
ROLES = {"annotator": ("alpha", "annotator"), "reviewer": ("alpha", "reviewer"), "admin": ("alpha", "project-admin")}


def rle(value: int = 1, size: int = 24) -> bytes:
    """A mask as RLE JSON: every pixel ``value``."""
    return json.dumps({"encoding": "rle", "size": [size, size], "runs": [[value, size * size]]}).encode()


@dataclass
class Objects:
    """Ids of one project's real objects, one of each kind a route can name."""

    project: str
    dicom: bytes = b""
    image_ids: list[str] = field(default_factory=list)
    masks: dict[str, bytes] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    base: str
    app: Any
    keys: dict[str, str]
    objects: dict[str, Objects]

    def headers(self, caller: str) -> dict[str, str]:
        if caller == "anonymous":
            return {}
        if caller == "wrong":
            return {"X-API-Key": "medal_aaaaaaaaaaaa_" + "b" * 43}
        return {"X-API-Key": self.keys[caller]}

    def client(self, caller: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=self.headers(caller), timeout=120)


def _ingest(http: httpx.Client, project: str, folder: Path) -> Objects:
    synthetic_dataset(folder, count=8)
    slices = wrap_dataset(folder)
    created = http.post("/annotation/v1/projects", json={"name": project, "settings": SETTINGS})
    assert created.status_code == 201, created.text
    files = [("files", (f"s{n}.dcm", s.dicom, "application/dicom")) for n, s in enumerate(slices)]
    ingested = http.post(f"/ingest/v1/projects/{project}/instances", files=files)
    assert ingested.status_code == 200, ingested.text
    found = Objects(project, dicom=slices[0].dicom)
    found.ids["job_id"] = ingested.json()["job"]["id"]
    for result in ingested.json()["results"]:
        image_id = result["image_ids"][0]
        found.image_ids.append(image_id)
        found.masks[image_id] = slices[result["index"]].mask_path.read_bytes()
        found.ids.setdefault("instance_id", result["instance_id"])
    wait_for(lambda: http.get(f"/annotation/v1/projects/{project}").json().get("images") == len(slices), seconds=60)
    return found


def _label_cold_start(http: httpx.Client, found: Objects) -> None:
    project = found.project
    started = http.post(f"/annotation/v1/projects/{project}/rounds")
    assert started.status_code == 201, started.text
    found.ids["round_id"] = started.json()["id"]  # completed below: closing or retrying it changes nothing
    while (task := http.post(f"/annotation/v1/projects/{project}/tasks/lease").json()["task"]) is not None:
        saved = http.post(
            f"/annotation/v1/tasks/{task['task_id']}/mask",
            content=found.masks[task["image_id"]],
            headers={"content-type": "image/png", "X-Lease-Token": task["lease_token"]},
        )
        assert saved.status_code == 200, saved.text
        found.ids.setdefault("image_id", task["image_id"])  # labelled by the platform key: someone else's mask


def _after_training(http: httpx.Client, found: Objects) -> None:
    project = found.project

    def next_round() -> dict[str, Any] | None:
        rounds = http.get(f"/annotation/v1/projects/{project}/rounds").json()
        return next((r for r in rounds if r["state"] == "open" and r["number"] == 1), None)

    opened = wait_for(next_round, seconds=240, interval=0.25)
    found.ids["open_round_id"] = opened["id"]
    tasks = http.get(f"/annotation/v1/rounds/{opened['id']}/tasks").json()
    found.ids["task_id"] = tasks[0]["task_id"]
    selections = http.get(f"/query/v1/projects/{project}/selections").json()
    found.ids["selection_id"] = selections[0]["id"]
    studies = http.get(f"/ingest/dicomweb/{project}/studies", headers={"Accept": "application/dicom+json"}).json()
    study = studies[0]["0020000D"]["Value"][0]
    instances = http.get(f"/ingest/dicomweb/{project}/studies/{study}/instances").json()
    found.ids |= {
        "study": study,
        "series": instances[0]["0020000E"]["Value"][0],
        "sop": instances[0]["00080018"]["Value"][0],
    }


def _keys(http: httpx.Client) -> tuple[dict[str, str], dict[str, str]]:
    """Keys of the callers, and per project a spare key id (the one the matrix revokes)."""
    keys = {"platform": PLATFORM_KEY}
    wanted = {**ROLES, "other-admin": ("beta", "project-admin")}
    for caller, (project, role) in wanted.items():
        created = http.post("/annotation/v1/keys", json={"project": project, "role": role, "label": caller})
        assert created.status_code == 201, created.text
        keys[caller] = created.json()["key"]
    spare = {}
    for project in PROJECTS:
        created = http.post("/annotation/v1/keys", json={"project": project, "role": "annotator", "label": "spare"})
        spare[project] = created.json()["id"]
    return keys, spare


@contextmanager
def built_world(root: Path) -> Iterator[World]:
    settings = Settings(
        data_dir=root / "state",
        api_keys=[SecretStr(PLATFORM_KEY)],
        deid_secret="matrix-deid-secret-of-32-characters",
        auth_failures_burst=10_000,
        trainer_threads=1,
    )
    app = build_app(settings, SERVICE_NAMES, consume=True, migrate=True)
    with serve_in_thread(app) as base:
        with httpx.Client(base_url=base, headers={"X-API-Key": PLATFORM_KEY}, timeout=120) as http:
            objects = {project: _ingest(http, project, root / project) for project in PROJECTS}
            for found in objects.values():
                _label_cold_start(http, found)
            for found in objects.values():
                _after_training(http, found)
            keys, spare = _keys(http)
            for project, key_id in spare.items():
                objects[project].ids["key_id"] = key_id
        yield World(base, app, keys, objects)
