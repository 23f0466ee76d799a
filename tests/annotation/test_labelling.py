"""The annotation side of the loop, embedded: rounds, leases, masks, selections, machine masks."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, update

from medal.app import build_app
from medal.db.schema import annotation as tables
from medal.db.schema.base import utcnow
from medal.db.schema.messaging import outbox
from medal.local_server import serve_in_thread
from medal.settings import Settings
from proto import BatchSelected, ImageIngested, ModelTrained, PredictionsStored, envelope_for
from proto.envelope import Envelope
from proto.loop import Prediction, SelectionSpec, TrainingSpec
from proto.manifests import LabelledSet, Pool
from tests.e2e.helpers import wait_for

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
    def __init__(self, base: str, app: Any) -> None:
        self.base = base
        self.app = app
        self.platform = app.state.platform
        self.http = httpx.Client(base_url=base, timeout=30)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.platform.relay._loop).result(timeout=30)

    def publish(self, message: Any, source: str) -> Envelope:
        envelope = envelope_for(message, source=source)
        self.platform.bus.publish(envelope)
        return envelope

    def outbox(self, message_type: str) -> list[dict[str, Any]]:
        async def rows() -> list[dict[str, Any]]:
            async with self.platform.db.connect() as conn:
                found = await conn.execute(select(outbox.c.body).where(outbox.c.message_type == message_type))
                return [json.loads(row.body) for row in found]

        result: list[dict[str, Any]] = self.run(rows())
        return result

    def lease(self, annotator: str = "ann") -> dict[str, Any]:
        response = self.http.post(f"/annotation/v1/projects/{PROJECT}/tasks/lease", json={"annotator": annotator})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def submit(self, task: dict[str, Any], body: bytes = b"", content_type: str = "image/png") -> httpx.Response:
        return self.http.post(
            f"/annotation/v1/tasks/{task['task_id']}/mask",
            content=body or good_mask(),
            headers={"content-type": content_type, "X-Lease-Token": task["lease_token"]},
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def harness(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    database = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    settings = Settings(data_dir=tmp_path_factory.mktemp("annotation"), api_keys=[], database_url=database)
    app = build_app(settings, ["annotation"], consume=True, migrate=True)
    with serve_in_thread(app) as base:
        h = Harness(base, app)
        assert h.http.post("/annotation/v1/projects", json={"name": PROJECT, "settings": SETTINGS}).status_code == 201
        images = []
        for n in range(10):
            digest = f"{n:064x}"
            event = ImageIngested(
                project=PROJECT,
                image_id=uuid.uuid4(),
                study_id=uuid.uuid4(),
                series_id=uuid.uuid4(),
                instance_id=uuid.uuid4(),
                frame=0,
                modality="CT",
                width=SIZE[0],
                height=SIZE[1],
                display_key=f"display/{digest[:2]}/{digest}.png",
                display_sha256=digest,
                training_key=f"training/{digest[:2]}/{digest}.png",
                training_sha256=digest,
            )
            h.publish(event, "ingest")
            images.append(str(event.image_id))
        wait_for(lambda: h.http.get(f"/annotation/v1/projects/{PROJECT}/images").json()["total"] == 10)
        h.images = images  # type: ignore[attr-defined]
        yield h
        h.http.close()


def test_lease_before_start_says_not_started(harness: Harness) -> None:
    assert harness.lease() == {"task": None, "status": "not-started"}


def test_a_round_from_cold_start_to_the_train_event(harness: Harness) -> None:
    h = harness
    started = h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds")
    assert started.status_code == 201 and started.json()["tasks"] == 3 and started.json()["source"] == "cold-start"
    again = h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds")
    assert again.status_code == 409 and again.json()["error"]["code"] == "project-started"

    first, second = h.lease("alice")["task"], h.lease("bob")["task"]
    assert first["image_id"] != second["image_id"]

    wrong_size = h.submit(first, png(np.zeros((3, 3))))
    assert wrong_size.status_code == 422 and "3x3" in wrong_size.json()["error"]["message"]
    unknown_class = h.submit(first, png(np.full((SIZE[1], SIZE[0]), 7)))
    assert unknown_class.status_code == 422 and "[7]" in unknown_class.json()["error"]["message"]
    not_png = h.submit(first, b"not an image")
    assert not_png.status_code == 422
    stolen = h.submit({**first, "lease_token": second["lease_token"]})
    assert stolen.status_code == 409 and stolen.json()["error"]["code"] == "not-your-lease"

    assert h.submit(first).status_code == 200
    closed = h.submit(first)
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "task-closed"

    # Bob's lease expires: the task returns to the pool, and his late submission is refused.
    async def expire() -> None:
        async with h.platform.db.begin() as conn:
            await conn.execute(
                update(tables.tasks)
                .where(tables.tasks.c.id == second["task_id"])
                .values(lease_expires_at=utcnow().replace(year=2000))
            )

    h.run(expire())
    late = h.submit(second)
    assert late.status_code == 409 and late.json()["error"]["code"] == "lease-expired"
    retaken = h.lease("carol")["task"]
    assert retaken["task_id"] == second["task_id"] and retaken["lease_token"] != second["lease_token"]
    rle = {"encoding": "rle", "size": [SIZE[1], SIZE[0]], "runs": [[0, 60], [1, 60]]}
    assert h.submit(retaken, json.dumps(rle).encode(), "application/json").status_code == 200
    last = h.lease("alice")["task"]
    response = h.submit(last)
    assert response.json()["round_completed"] is True

    (event,) = h.outbox("round.completed.v1")
    payload = event["payload"]
    assert payload["labels"] == 3 and payload["committee_size"] == 2 and payload["training"]["num_classes"] == 3
    labelled = LabelledSet.model_validate_json(h.platform.store.get(payload["labelled_set_key"]))
    pool = Pool.model_validate_json(h.platform.store.get(payload["pool_key"]))
    assert len(labelled.items) == 3 and len(pool.items) == 7
    assert not {str(i.image_id) for i in labelled.items} & {str(i.image_id) for i in pool.items}
    rounds = h.http.get(f"/annotation/v1/projects/{PROJECT}/rounds").json()
    assert [r["state"] for r in rounds] == ["completed", "open"]
    assert rounds[1]["source"] == "backlog" and rounds[1]["tasks"] == 2  # nobody waits for the model


def test_selection_replaces_backlog_tasks_and_machine_masks_arrive(harness: Harness) -> None:
    h = harness
    h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds")
    for _ in range(3):
        task = h.lease()["task"]
        h.submit(task)
    backlog_round = h.http.get(f"/annotation/v1/projects/{PROJECT}/rounds").json()[1]
    assert backlog_round["source"] == "backlog"

    round_id = h.outbox("round.completed.v1")[0]["payload"]["round_id"]
    version_id = uuid.uuid4()
    spec = TrainingSpec(num_classes=3, image_size=32, width=0.0625, max_epochs=2, patience=1, batch_size=2)
    selection = SelectionSpec(strategy="suggestive", candidates=4, batch=2)
    h.publish(
        ModelTrained(
            project=PROJECT,
            round_id=uuid.UUID(round_id),
            model_version_id=version_id,
            version=1,
            member_keys=["weights/aa/a.pt"],
            validation_dice=0.5,
            labels=3,
            pool_key="manifests/aa/pool.json",
            training=spec,
            selection=selection,
        ),
        "trainer",
    )
    wait_for(lambda: len(h.http.get(f"/annotation/v1/projects/{PROJECT}/models").json()) == 1)

    labelled = {t for t in h.images if h.http.get(f"/annotation/v1/images/{t}/mask").status_code == 200}
    unlabelled = [i for i in h.images if i not in labelled]
    chosen = unlabelled[-2:]
    h.publish(
        BatchSelected(
            project=PROJECT,
            model_version_id=version_id,
            selection_id=uuid.uuid4(),
            chosen=[uuid.UUID(i) for i in chosen],
            backlog=[],
        ),
        "query",
    )

    def switched() -> bool:
        return h.http.get(f"/annotation/v1/projects/{PROJECT}/rounds").json()[1]["source"] == "selection"

    wait_for(switched)
    leased = {h.lease()["task"]["image_id"] for _ in range(2)}
    assert leased == set(chosen)

    autolabel = h.http.post(f"/annotation/v1/projects/{PROJECT}/autolabel", json={})
    assert autolabel.status_code == 202 and autolabel.json()["images"] == len(unlabelled)
    commands = h.outbox("autolabel.run.v1")
    assert sum(len(c["payload"]["items"]) for c in commands) == len(unlabelled)

    target = unlabelled[0]
    digest = "ab" * 32
    stored = PredictionsStored(
        project=PROJECT,
        job_id=uuid.UUID(autolabel.json()["job_id"]),
        model_version_id=version_id,
        shard_index=0,
        shard_count=1,
        predictions=[
            Prediction(
                image_id=uuid.UUID(target), mask_key=f"predictions/ab/{digest}.png", mask_sha256=digest, confidence=0.42
            )
        ],
    )
    h.platform.store.put(f"predictions/ab/{digest}.png", good_mask(), "image/png")
    envelope = h.publish(stored, "inference")
    h.platform.bus.publish(envelope)  # a redelivery of the same message
    h.publish(stored, "inference")  # the same shard reported again under a new id

    mask = wait_for(lambda: (r := h.http.get(f"/annotation/v1/images/{target}/mask")).status_code == 200 and r)
    assert mask.headers["X-Mask-Machine-Made"] == "true" and mask.headers["X-Mask-Confidence"] == "0.4200"
    assert mask.headers["ETag"] == '"1"'
    status = h.http.get(f"/annotation/v1/projects/{PROJECT}/status").json()
    assert status["labels"] == 3 and status["autolabel"][0]["shards_done"] == 1
    machine = h.http.get(f"/annotation/v1/projects/{PROJECT}/masks", params={"machine_made": "true"}).json()
    assert [(m["image_id"], m["confidence"], m["version"]) for m in machine] == [(target, 0.42, 1)]
    everything = h.http.get(f"/annotation/v1/projects/{PROJECT}/masks").json()
    assert everything[0]["machine_made"] is True and sum(not m["machine_made"] for m in everything) == 3


def test_round_closing_and_mask_versions(harness: Harness) -> None:
    h = harness
    started = h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds").json()
    no_labels = h.http.post(f"/annotation/v1/rounds/{started['id']}/close")
    assert no_labels.status_code == 409 and no_labels.json()["error"]["code"] == "no-labels"
    task = h.lease()["task"]
    h.submit(task)
    assert h.http.post(f"/annotation/v1/rounds/{started['id']}/close").status_code == 204
    twice = h.http.post(f"/annotation/v1/rounds/{started['id']}/close")
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "round-closed"
    assert len(h.outbox("round.completed.v1")) == 1

    image = task["image_id"]
    url = f"/annotation/v1/images/{image}/mask"
    assert h.http.put(url, content=good_mask(), headers={"content-type": "image/png"}).status_code == 428
    stale = h.http.put(url, content=good_mask(), headers={"content-type": "image/png", "If-Match": '"0"'})
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "stale-version"
    saved = h.http.put(url, content=good_mask(), headers={"content-type": "image/png", "If-Match": '"1"'})
    assert saved.status_code == 200 and saved.json()["version"] == 2
    assert h.http.get(url).headers["ETag"] == '"2"'
