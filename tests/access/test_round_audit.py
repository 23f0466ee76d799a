"""One whole round in beta, each step by the person whose role it is, then its audit trail read back:
viewed → leased → labelled (over the model's suggestion) → approved → training → trained → promoted →
exported, with who, when and under which model version; as JSON pages and as CSV, for project admins only."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.access.world import World, rle
from tests.e2e.helpers import wait_for

A = "/annotation/v1"


def person(world: World, admin: httpx.Client, role: str) -> httpx.Client:
    created = admin.post(f"{A}/keys", json={"project": "beta", "role": role, "label": f"beta {role}"})
    assert created.status_code == 201, created.text
    return httpx.Client(base_url=world.base, headers={"X-API-Key": created.json()["key"]}, timeout=120)


def trail(admin: httpx.Client, after: int = 0) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    while True:
        page = admin.get(f"{A}/projects/beta/audit", params={"after": after, "limit": 50})
        assert page.status_code == 200, page.text
        entries += page.json()["entries"]
        if page.json()["next_after"] is None:
            return entries
        after = page.json()["next_after"]


def test_one_round_leaves_a_complete_audit_trail(world: World) -> None:
    admin = world.client("other-admin")  # beta's project admin
    annotator, reviewer = person(world, admin, "annotator"), person(world, admin, "reviewer")
    me = {
        name: client.get(f"{A}/me").json()["id"]
        for name, client in (("annotator", annotator), ("reviewer", reviewer), ("admin", admin))
    }
    start = trail(admin)[-1]["seq"]
    started_at = datetime.now().astimezone() - timedelta(seconds=5)

    # The model's suggestion on every unlabelled image, the task's one included.
    assert admin.post(f"{A}/projects/beta/autolabel", json={}).status_code == 202
    lease = annotator.post(f"{A}/projects/beta/tasks/lease").json()
    task = lease["task"]
    assert task is not None, lease
    image = task["image_id"]
    suggestion = wait_for(
        lambda: (
            (r := annotator.get(f"{A}/images/{image}/mask")).status_code == 200
            and r.headers["X-Mask-Machine-Made"] == "true"
            and r
        ),
        seconds=120,
    )
    model_version = suggestion.headers["X-Mask-Model-Version"]
    for _ in range(3):  # three looks within the hour: one row
        assert annotator.get(f"{A}/images/{image}/display.png").status_code == 200
        assert annotator.get(f"{A}/images/{image}/windowed.png", params={"preset": "ct-lung"}).status_code == 200

    saved = annotator.post(
        f"{A}/tasks/{task['task_id']}/mask",
        content=rle(),
        headers={"content-type": "application/json", "X-Lease-Token": task["lease_token"]},
    )
    assert saved.status_code == 200 and saved.json()["round_completed"] is True, saved.text
    version = saved.json()["version"]
    assert annotator.post(f"{A}/images/{image}/mask/approve", json={"version": version}).status_code == 403
    approved = reviewer.post(f"{A}/images/{image}/mask/approve", json={"version": version})
    assert approved.status_code == 200 and approved.json()["approved_by"] == me["reviewer"], approved.text

    models = wait_for(
        lambda: len(v := admin.get("/trainer/v1/projects/beta/models").json()["versions"]) >= 2 and v, seconds=240
    )
    newest = max(v["version"] for v in models)
    assert annotator.post(f"/trainer/v1/projects/beta/models/{newest}/promote").status_code == 403
    assert admin.post(f"/trainer/v1/projects/beta/models/{newest}/promote").status_code == 200
    assert admin.get(f"{A}/projects/beta/export", params={"format": "png"}).status_code == 200
    wait_for(lambda: any(e["action"] == "model-trained" for e in trail(admin, start)), seconds=60)

    entries = trail(admin, start)
    by_action: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_action.setdefault(entry["action"], []).append(entry)
        assert datetime.fromisoformat(entry["at"]) >= started_at and entry["project"] == "beta"
    who = {action: {e["actor"] for e in rows} for action, rows in by_action.items()}
    assert who["autolabel-requested"] == {me["admin"]}
    assert who["leased"] == who["labelled"] == who["training-requested"] == {me["annotator"]}
    assert who["approved"] == {me["reviewer"]} and who["exported"] == {me["admin"]}
    assert me["admin"] in who["promoted"] and who["model-trained"] == {"service:trainer"}
    viewed = [e for e in by_action["viewed"] if e["subject_id"] == image]
    assert len(viewed) == 1 and viewed[0]["actor"] == me["annotator"]

    (labelled,) = by_action["labelled"]
    assert labelled["subject_id"] == image and labelled["details"]["version"] == version
    assert (
        labelled["details"]["over"] == "model-suggestion" and labelled["details"]["model_version_id"] == model_version
    )
    (approval,) = by_action["approved"]
    assert approval["details"] == {"version": version, "author": me["annotator"], "machine_made": False}
    promoted = [e for e in by_action["promoted"] if e["actor"] == me["admin"]]
    assert promoted[0]["details"]["version"] == newest and promoted[0]["actor_kind"] == "api-key"
    assert by_action["exported"][0]["details"]["format"] == "png"
    order = [e["action"] for e in entries]
    assert order.index("leased") < order.index("labelled") < order.index("approved") < order.index("exported")
    assert order.index("training-requested") < order.index("model-trained")

    exported = admin.get(f"{A}/projects/beta/audit", params={"after": start, "format": "csv"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["action"] for r in rows] == order[: len(rows)] and rows[0]["actor"] == entries[0]["actor"]
    assert reviewer.get(f"{A}/projects/beta/audit").status_code == 403
    assert world.client("admin").get(f"{A}/projects/beta/audit").status_code == 404  # alpha's admin
    for client in (annotator, reviewer, admin):
        client.close()
