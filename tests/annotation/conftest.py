"""An annotation process (API + its consumer) with a project of ten images, and three people's API keys."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import select

from medal.app import build_app
from medal.db.schema.messaging import outbox
from medal.local_server import serve_in_thread
from medal.settings import Settings
from proto import ModelPromoted, ModelTrained, envelope_for
from proto.envelope import Envelope
from proto.loop import TrainingSpec
from tests.e2e.helpers import wait_for
from tests.factories import image_ingested

PROJECT = "lungs"
SIZE = (12, 10)  # width, height
SETTINGS = {
    "classes": [{"name": "ground-glass", "colour": "#00ff00"}, {"name": "consolidation", "colour": "#ff0000"}],
    "strategy": "suggestive",
    "candidates": 4,
    "batch": 2,
    "initial_labels": 3,
    "committee": 2,
    "target_dice": 0.95,
    "training": {"image_size": 32, "width": 0.0625, "max_epochs": 2},
}
#: Each person's API key; the caller id the service derives from it is ``key-<sha256[:12]>``.
KEYS = {name: f"{name}-test-key" for name in ("alice", "bob", "carol")}
SPEC = TrainingSpec(num_classes=3, image_size=32, width=0.0625, max_epochs=2, patience=1, batch_size=2)


def caller_id(name: str) -> str:
    return "key-" + hashlib.sha256(KEYS[name].encode()).hexdigest()[:12]


def png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def good_mask() -> bytes:
    mask = np.zeros((SIZE[1], SIZE[0]), dtype=np.uint8)
    mask[2:5, 3:7] = 1
    mask[6:8, 1:3] = 2
    return png(mask)


class Harness:
    """``http`` acts as alice; ``people[name]`` as each person."""

    def __init__(self, base: str, app: Any) -> None:
        self.base = base
        self.app = app
        self.platform = app.state.platform
        self.people = {
            name: httpx.Client(base_url=base, timeout=30, headers={"X-API-Key": key}) for name, key in KEYS.items()
        }
        self.http = self.people["alice"]
        self.images: list[str] = []

    def close(self) -> None:
        for client in self.people.values():
            client.close()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.platform.relay._loop).result(timeout=30)

    def publish(self, message: Any, source: str) -> Envelope:
        envelope = envelope_for(message, source=source)
        self.platform.bus.publish(envelope)
        return envelope

    def outbox(self, message_type: str) -> list[dict[str, Any]]:
        async def rows() -> list[dict[str, Any]]:
            async with self.platform.db.connect() as conn:
                found = await conn.execute(
                    select(outbox.c.body).where(outbox.c.message_type == message_type).order_by(outbox.c.created_at)
                )
                return [json.loads(row.body) for row in found]

        result: list[dict[str, Any]] = self.run(rows())
        return result

    def lease(self, who: str = "alice") -> dict[str, Any]:
        response = self.people[who].post(f"/annotation/v1/projects/{PROJECT}/tasks/lease")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def submit(
        self, task: dict[str, Any], body: bytes = b"", content_type: str = "image/png", who: str = "alice"
    ) -> httpx.Response:
        return self.people[who].post(
            f"/annotation/v1/tasks/{task['task_id']}/mask",
            content=body or good_mask(),
            headers={"content-type": content_type, "X-Lease-Token": task["lease_token"]},
        )

    def label_round(self, who: str = "alice") -> None:
        """Lease and submit every task on offer."""
        while task := self.lease(who)["task"]:
            assert self.submit(task, who=who).status_code == 200

    def rounds(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self.http.get(f"/annotation/v1/projects/{PROJECT}/rounds").json()
        return answer

    def train(self, round_id: str, version: int = 1, *, promote: bool = True) -> uuid.UUID:
        """The trainer's answer for a round: model.trained.v2, then (unless told not to) model.promoted.v1."""
        version_id = uuid.uuid4()
        trained = ModelTrained(
            project=PROJECT,
            round_id=uuid.UUID(round_id),
            model_version_id=version_id,
            version=version,
            member_keys=["weights/aa/a.pt"],
            validation_dice=0.5,
            labels=3,
            training=SPEC,
        )
        self.publish(trained, "trainer")
        wait_for(lambda: any(m["id"] == str(version_id) for m in self.models()))
        if promote:
            self.publish(ModelPromoted(project=PROJECT, model_version_id=version_id, version=version), "trainer")
            wait_for(lambda: any(m["id"] == str(version_id) and m["current"] for m in self.models()))
        return version_id

    def models(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self.http.get(f"/annotation/v1/projects/{PROJECT}/models").json()
        return answer


@pytest.fixture(params=["sqlite", "postgresql"])
def harness(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    database = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("annotation"),
        api_keys=[SecretStr(key) for key in KEYS.values()],
        database_url=database,
    )
    app = build_app(settings, ["annotation"], consume=True, migrate=True)
    with serve_in_thread(app) as base:
        h = Harness(base, app)
        created = h.http.post("/annotation/v1/projects", json={"name": PROJECT, "settings": SETTINGS})
        assert created.status_code == 201, created.text
        for n in range(10):
            event = image_ingested(PROJECT, n, width=SIZE[0], height=SIZE[1])
            h.publish(event, "ingest")
            h.images.append(str(event.image_id))
        wait_for(lambda: h.http.get(f"/annotation/v1/projects/{PROJECT}/images").json()["total"] == 10)
        yield h
        h.close()
