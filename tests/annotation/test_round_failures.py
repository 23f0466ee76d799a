"""A round whose training failed is shown on the round, the project, the lease and MONAI Label's train
status, and retried by a person on today's masks; the trainer alone decides the current model."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np

from proto import ModelPromoted, ModelTrained, RoundFailed
from proto.manifests import LabelledSet
from tests.annotation.conftest import PROJECT, SIZE, SPEC, Harness, png
from tests.e2e.helpers import wait_for

REASON = "image 3 of the labelled set cannot be decoded: re-submit its mask"


def completed_round(h: Harness) -> dict[str, Any]:
    """Label the cold-start round (no backlog round follows: the project keeps nobody busy)."""
    settings = h.http.get(f"/annotation/v1/projects/{PROJECT}").json()["settings"]
    assert (
        h.http.put(
            f"/annotation/v1/projects/{PROJECT}/settings", json={**settings, "keep_annotators_busy": False}
        ).status_code
        == 200
    )
    assert h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds").status_code == 201
    h.label_round()
    (first,) = h.rounds()
    assert first["state"] == "completed"
    return first


def fail(h: Harness, round_row: dict[str, Any], attempt: int, code: str = "bad-training-data") -> None:
    event = RoundFailed(
        project=PROJECT,
        round_id=uuid.UUID(round_row["id"]),
        round_number=round_row["number"],
        attempt=attempt,
        code=code,  # type: ignore[arg-type]
        reason=REASON,
    )
    h.publish(event, "trainer")


def monailabel(h: Harness, method: str = "GET") -> Any:
    return h.http.request(method, f"/annotation/monailabel/{PROJECT}/train/")


def test_a_failed_round_is_shown_everywhere_and_retried_on_todays_masks(harness: Harness) -> None:
    h = harness
    first = completed_round(h)
    not_failed = h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds/{first['id']}/retry")
    assert not_failed.status_code == 409 and not_failed.json()["error"]["code"] == "round-not-failed"
    assert h.lease()["status"] == "waiting-for-model"
    assert monailabel(h).json()["status"] == "RUNNING"

    fail(h, first, attempt=1)
    failed = wait_for(lambda: (r := h.rounds()[0])["state"] == "training-failed" and r)
    failure = failed["failure"]
    assert failure["code"] == "bad-training-data" and failure["reason"] == REASON and failure["attempt"] == 1
    assert failure["round_id"] == first["id"] and failure["round_number"] == 0 and failure["failed_at"]
    status = h.http.get(f"/annotation/v1/projects/{PROJECT}/status").json()
    assert status["failure"] == failure and status["rounds"][0]["state"] == "training-failed"
    assert h.lease() == {"task": None, "status": "training-failed", "failure": failure}
    train = monailabel(h).json()
    assert train["status"] == "ERROR" and train["id"] == first["id"] and train["end_ts"]
    assert REASON in train["details"][0] and train["failure"]["code"] == "bad-training-data"
    assert h.http.get(f"/annotation/monailabel/{PROJECT}/train/", params={"check_if_running": True}).status_code == 404
    assert monailabel(h, "DELETE").status_code == 200  # nothing runs: nothing to refuse

    # The person fixes the cause (a corrected mask), then retries: the manifest is rebuilt from today's masks.
    image_id = h.http.get(f"/annotation/v1/projects/{PROJECT}/masks").json()[0]["image_id"]
    corrected = np.zeros((SIZE[1], SIZE[0]), dtype=np.uint8)
    corrected[:, :4] = 2
    edit = h.people["bob"].put(
        f"/annotation/v1/images/{image_id}/mask",
        content=png(corrected),
        headers={"content-type": "image/png", "If-Match": '"1"'},
    )
    assert edit.status_code == 200
    retried = h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds/{first['id']}/retry")
    assert retried.status_code == 202, retried.text
    body = retried.json()
    assert body["state"] == "completed" and body["attempt"] == 2 and body["failure"] is None
    events = h.outbox("round.completed.v1")
    assert sorted(e["payload"]["attempt"] for e in events) == [1, 2]
    assert len({e["id"] for e in events}) == 2  # a retry is a new message, derived from round and attempt
    original, again = sorted(events, key=lambda e: e["payload"]["attempt"])
    assert again["payload"]["round_id"] == first["id"] and again["payload"]["labels"] == original["payload"]["labels"]
    manifest = LabelledSet.model_validate_json(h.platform.store.get(again["payload"]["labelled_set_key"]))
    old = LabelledSet.model_validate_json(h.platform.store.get(original["payload"]["labelled_set_key"]))
    fresh = {str(i.image_id): i.mask_key for i in manifest.items}
    stale = {str(i.image_id): i.mask_key for i in old.items}
    assert fresh[image_id] != stale[image_id]  # the corrected mask, not the one that failed
    assert h.lease()["status"] == "waiting-for-model"
    assert monailabel(h).json()["status"] == "RUNNING"
    twice = h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds/{first['id']}/retry")
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "round-not-failed"

    # A late failure of attempt 1 changes nothing now that attempt 2 is under way; attempt 2's failure does.
    fail(h, first, attempt=1)
    fail(h, first, attempt=2, code="attempts-exhausted")
    again_failed = wait_for(lambda: (r := h.rounds()[0])["state"] == "training-failed" and r)
    assert again_failed["attempt"] == 2 and again_failed["failure"]["code"] == "attempts-exhausted"
    # MONAI Label's POST /train/ retries the failed latest round the same way.
    started = h.http.post(f"/annotation/monailabel/{PROJECT}/train/")
    assert started.status_code == 200 and started.json()["status"] == "RUNNING" and started.json()["attempt"] == 3
    assert sorted(e["payload"]["attempt"] for e in h.outbox("round.completed.v1")) == [1, 2, 3]
    assert h.platform.bus.dead_letters("annotation.events") == []


def test_retry_names_unknown_projects_and_rounds(harness: Harness) -> None:
    h = harness
    nobody = h.http.post(f"/annotation/v1/projects/nobody/rounds/{uuid.uuid4()}/retry")
    assert nobody.status_code == 404 and nobody.json()["error"]["code"] == "project-not-found"
    unknown = h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds/{uuid.uuid4()}/retry")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "round-not-found"
    assert h.http.post(f"/annotation/v1/projects/{PROJECT}/rounds/not-an-id/retry").status_code == 422


def test_only_a_promotion_makes_a_version_current_even_one_that_overtook_its_training(harness: Harness) -> None:
    h = harness
    first = completed_round(h)
    version_id = uuid.uuid4()
    h.publish(ModelPromoted(project=PROJECT, model_version_id=version_id, version=1), "trainer")
    time.sleep(0.3)  # the promotion is refused (not yet recorded) and waits for its retry
    assert h.models() == []
    trained = ModelTrained(
        project=PROJECT,
        round_id=uuid.UUID(first["id"]),
        model_version_id=version_id,
        version=1,
        member_keys=["weights/aa/a.pt"],
        validation_dice=0.5,
        labels=3,
        training=SPEC,
    )
    h.publish(trained, "trainer")
    wait_for(lambda: [m["current"] for m in h.models()] == [True], seconds=60)
    assert h.platform.bus.dead_letters("annotation.events") == []
    # A second version is only recorded: the first stays current until the trainer promotes the second.
    second = h.train(first["id"], version=2, promote=False)
    assert [(m["version"], m["current"]) for m in h.models()] == [(1, True), (2, False)]
    h.publish(ModelPromoted(project=PROJECT, model_version_id=second, version=2), "trainer")
    wait_for(lambda: [(m["version"], m["current"]) for m in h.models()] == [(1, False), (2, True)])
