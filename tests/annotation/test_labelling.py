"""The annotation side of the loop, embedded: rounds, leases, masks, selections, machine masks."""

from __future__ import annotations

import json
import uuid

import httpx
import numpy as np
from sqlalchemy import update

from medal.db.schema import annotation as tables
from medal.db.schema.base import utcnow
from proto import BatchSelected, ModelPromoted, PredictionsStored
from proto.loop import Prediction
from proto.manifests import LabelledSet, Pool
from tests.annotation.conftest import PROJECT, SIZE, Harness, caller_id, good_mask, png
from tests.e2e.helpers import wait_for


def test_lease_before_start_says_not_started(harness: Harness) -> None:
    assert harness.lease() == {"task": None, "status": "not-started", "failure": None}


def test_a_round_from_cold_start_to_the_train_event(harness: Harness) -> None:
    h = harness
    started = h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds")
    assert started.status_code == 201 and started.json()["tasks"] == 3 and started.json()["source"] == "cold-start"
    again = h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds")
    assert again.status_code == 409 and again.json()["error"]["code"] == "project-started"

    first, second = h.lease("alice")["task"], h.lease("bob")["task"]
    assert first["image_id"] != second["image_id"]
    holders = {
        t["task_id"]: t["lease_owner"] for t in h.http.get(f"/annotation/v1/rounds/{first['round_id']}/tasks").json()
    }
    assert holders[first["task_id"]] == caller_id("alice") and holders[second["task_id"]] == caller_id("bob")
    # Bob's token does not make alice the holder of his task, nor does alice's make bob hers.
    borrowed = h.submit({**second}, who="alice")
    assert borrowed.status_code == 409 and borrowed.json()["error"]["code"] == "not-your-lease"

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
    late = h.submit(second, who="bob")
    assert late.status_code == 409 and late.json()["error"]["code"] == "lease-expired"
    retaken = h.lease("carol")["task"]
    assert retaken["task_id"] == second["task_id"] and retaken["lease_token"] != second["lease_token"]
    rle = {"encoding": "rle", "size": [SIZE[1], SIZE[0]], "runs": [[0, 60], [1, 60]]}
    assert h.submit(retaken, json.dumps(rle).encode(), "application/json", who="carol").status_code == 200
    last = h.lease("alice")["task"]
    response = h.submit(last)
    assert response.json()["round_completed"] is True

    (event,) = h.outbox("round.completed.v1")
    payload = event["payload"]
    assert payload["attempt"] == 1
    assert payload["labels"] == 3 and payload["committee_size"] == 2 and payload["training"]["num_classes"] == 3
    labelled = LabelledSet.model_validate_json(h.platform.store.get(payload["labelled_set_key"]))
    pool = Pool.model_validate_json(h.platform.store.get(payload["pool_key"]))
    assert len(labelled.items) == 3 and len(pool.items) == 7
    assert not {str(i.image_id) for i in labelled.items} & {str(i.image_id) for i in pool.items}
    rounds = h.rounds()
    assert [r["state"] for r in rounds] == ["completed", "open"]
    assert rounds[1]["source"] == "backlog" and rounds[1]["tasks"] == 2  # nobody waits for the model
    assert rounds[0]["attempt"] == 1 and rounds[0]["failure"] is None and rounds[0]["completed_at"]
    authors = {m["image_id"]: m["author"] for m in h.http.get(f"/annotation/v1/projects/{PROJECT}/masks").json()}
    assert authors == {
        first["image_id"]: caller_id("alice"),
        retaken["image_id"]: caller_id("carol"),
        last["image_id"]: caller_id("alice"),
    }


def test_selection_replaces_backlog_tasks_and_machine_masks_arrive(harness: Harness) -> None:
    h = harness
    h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds")
    for _ in range(3):
        task = h.lease()["task"]
        h.submit(task)
    backlog_round = h.http.get(f"/annotation/v1/projects/{PROJECT}/rounds").json()[1]
    assert backlog_round["source"] == "backlog"

    round_id = h.outbox("round.completed.v1")[0]["payload"]["round_id"]
    # Trained is not current: with no promotion yet there is no model to auto-label with.
    version_id = h.train(round_id, promote=False)
    assert [m["current"] for m in h.models()] == [False]
    no_current = h.http.post(f"/annotation/v1/projects/{PROJECT}/autolabel", json={})
    assert no_current.status_code == 409 and no_current.json()["error"]["code"] == "no-model"
    h.publish(ModelPromoted(project=PROJECT, model_version_id=version_id, version=1), "trainer")
    wait_for(lambda: [m["current"] for m in h.models()] == [True])

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
    saved = h.people["bob"].put(url, content=good_mask(), headers={"content-type": "image/png", "If-Match": '"1"'})
    assert saved.status_code == 200 and saved.json()["version"] == 2
    assert h.http.get(url).headers["ETag"] == '"2"'
    (newest,) = h.http.get(f"/annotation/v1/projects/{PROJECT}/masks").json()
    assert (newest["version"], newest["author"]) == (2, caller_id("bob"))  # the reviewer, not "api"


def test_me_names_the_caller_and_no_key_is_refused(harness: Harness) -> None:
    h = harness
    me = h.people["carol"].get("/annotation/v1/me").json()
    assert (me["id"], me["kind"], me["platform_admin"]) == (caller_id("carol"), "platform-key", True)
    anonymous = httpx.get(f"{h.base}/annotation/v1/me")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthenticated"
    # The body no longer names who leases: an old client's "annotator" changes nothing.
    h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds")
    leased = h.http.post(f"/annotation/v1/projects/{PROJECT}/tasks/lease", json={"annotator": "mallory"}).json()
    holders = {
        t["task_id"]: t["lease_owner"]
        for t in h.http.get(f"/annotation/v1/rounds/{leased['task']['round_id']}/tasks").json()
    }
    assert holders[leased["task"]["task_id"]] == caller_id("alice")
