"""The trainer in one process (SQLite, a directory, the in-process bus): round → M jobs → one model version.

Also the registry over REST (list, compare, promote, roll back, each authored by the caller) and
bad rounds (recorded as failed, announced, shown by the job list, retried by a person).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import torch
from sqlalchemy import func, select

from medal.app import build_app
from medal.bus.inprocess import InProcessBus
from medal.db.engine import Database
from medal.db.schema import messaging
from medal.db.schema import trainer as tables
from medal.local_server import serve_in_thread
from medal.model.weights import load_member
from medal.settings import Settings
from medal.storage import build_store
from proto.manifests import LabelledSet
from services.trainer.failures import failure_message_id
from tests.e2e.helpers import wait_for
from tests.trainer.conftest import round_completed

API = "/trainer/v1/projects/chest"


class Trainer:
    def __init__(self, base: str, bus: InProcessBus, settings: Settings) -> None:
        self.base = base
        self.bus = bus
        self.settings = settings
        self.store = build_store(settings)
        self.http = httpx.Client(base_url=base, timeout=30)

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"{API}{path}", params=params)
        response.raise_for_status()
        return response.json()

    def count(self, table: Any, *where: Any) -> int:
        async def run() -> int:
            db = Database(self.settings.effective_database_url)
            try:
                async with db.connect() as conn:
                    return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar())
            finally:
                await db.dispose()

        return asyncio.run(run())

    def train_round(self, round_number: int) -> dict[str, Any]:
        envelope, event = round_completed(self.store, round_number=round_number, committee=2)
        self.bus.publish(envelope)
        return wait_for(lambda: self._version_of(str(event.round_id)), seconds=90, interval=0.2)  # type: ignore[no-any-return]

    def _version_of(self, round_id: str) -> dict[str, Any] | None:
        return next((v for v in self.get("/models")["versions"] if v["round_id"] == round_id), None)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trainer]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("trainer"), api_keys=[], trainer_heartbeat_seconds=0.5, trainer_threads=1
    )
    bus = InProcessBus()
    app = build_app(settings, ["trainer"], consume=True, migrate=True, bus=bus)
    with serve_in_thread(app) as base:
        yield Trainer(base, bus, settings)


def test_a_round_trains_its_committee_and_registers_one_version(trainer: Trainer) -> None:
    version = trainer.train_round(0)
    assert version["version"] == 1 and version["status"] == "current" and version["labels"] == 6
    assert [m["member_index"] for m in version["members"]] == [0, 1]
    assert all(m["attempts"] == 1 and m["epochs"] >= 1 for m in version["members"])
    assert 0.0 <= version["validation_dice"] <= 1.0

    jobs = trainer.get("/jobs")["jobs"]
    assert {(j["member_index"], j["state"]) for j in jobs} == {(0, "done"), (1, "done")}
    assert all(j["epoch"] >= 1 and j["loss"] is not None and j["queue_position"] is None for j in jobs)

    member = load_member(trainer.store.get(version["members"][0]["weights_key"]))
    logits, _ = member(torch.zeros(1, 1, 16, 16))
    assert logits.shape == (1, 2, 16, 16)

    outbox = messaging.outbox
    assert trainer.count(outbox, outbox.c.message_type == "model.trained.v2") == 1
    assert trainer.count(outbox, outbox.c.message_type == "model.promoted.v1") == 1
    assert trainer.count(outbox) == 2  # no command to itself any more
    (listed_round,) = trainer.get("/jobs")["rounds"]
    assert listed_round["state"] == "trained" and listed_round["attempt"] == 1
    assert listed_round["failure_reason"] is None and version["promoted_by"] is None


def test_a_redelivered_round_changes_nothing(trainer: Trainer) -> None:
    envelope, event = round_completed(trainer.store, round_number=5, committee=1)
    for _ in range(3):
        trainer.bus.publish(envelope)
    wait_for(lambda: trainer.count(tables.model_versions, tables.model_versions.c.round_id == str(event.round_id)))
    jobs = tables.jobs
    assert trainer.count(jobs, jobs.c.round_id == str(event.round_id)) == 1
    assert trainer.count(tables.model_versions, tables.model_versions.c.round_id == str(event.round_id)) == 1


def test_registry_lists_compares_promotes_and_rolls_back(trainer: Trainer) -> None:
    first = trainer.get("/models")["current"]  # earlier tests of this module may have trained versions
    second = trainer.train_round(1)
    assert second["status"] == "current"  # new versions become current until a person chooses one
    assert trainer.get(f"/models/{first}")["status"] == "retired"

    comparison = trainer.get("/models/compare", a=first, b=second["version"])
    assert comparison["a"]["version"] == first and comparison["b"]["version"] == second["version"]
    assert comparison["validation_dice_change"] == pytest.approx(
        second["validation_dice"] - comparison["a"]["validation_dice"]
    )

    rolled = trainer.http.post(f"{API}/models/rollback")
    assert rolled.status_code == 200 and rolled.json()["version"] == first
    assert rolled.json()["promoted_by"] == "local"  # the caller (no API keys: the local user)
    third = trainer.train_round(7)
    assert third["status"] == "candidate"  # a person chose the current version: new ones wait
    listed = trainer.get("/models")
    assert listed["current"] == first

    promoted = trainer.http.post(f"{API}/models/{third['version']}/promote")
    assert promoted.status_code == 200 and promoted.json()["status"] == "current"
    assert promoted.json()["promoted_by"] == "local"
    statuses = {v["version"]: v["status"] for v in trainer.get("/models")["versions"]}
    assert statuses[first] == "retired" and statuses[third["version"]] == "current"
    assert list(statuses.values()).count("current") == 1

    back = trainer.http.post(f"{API}/models/rollback")
    assert back.status_code == 200 and back.json()["version"] == second["version"]
    assert trainer.http.post(f"{API}/models/rollback").json()["version"] == first
    chain = [first]
    while (answer := trainer.http.post(f"{API}/models/rollback")).status_code == 200:
        chain.append(answer.json()["version"])  # older versions of earlier tests, newest first
        assert len(chain) < 10
    assert answer.status_code == 409 and chain == sorted(chain, reverse=True)
    assert answer.json()["error"]["code"] == "nothing-to-roll-back-to"
    for missing in (trainer.http.get(f"{API}/models/99"), trainer.http.post(f"{API}/models/99/promote")):
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model-version-not-found"


@pytest.mark.parametrize("problem", ["empty", "missing"])
def test_a_round_without_labels_fails_is_shown_and_can_be_retried(trainer: Trainer, problem: str) -> None:
    round_id = uuid.uuid4()
    key = "manifests/00/none.json"
    if problem == "empty":
        empty = LabelledSet(project="chest", round_id=round_id, num_classes=2, items=[])
        key = trainer.store.put_content("manifests", empty.model_dump_json().encode(), "json", "application/json").key
    envelope, _ = round_completed(trainer.store, labelled_set_key=key, round_id=round_id, round_number=20)
    trainer.bus.publish(envelope)
    shown = wait_for(lambda: next((r for r in trainer.get("/jobs")["rounds"] if r["id"] == str(round_id)), None))
    assert (shown["state"], shown["attempt"], shown["failure_code"]) == ("failed", 1, "round-rejected")
    reason = shown["failure_reason"]
    assert "no labelled images" in reason if problem == "empty" else "not in object storage" in reason
    assert "retry the round" in reason and shown["failed_at"] is not None
    outbox = messaging.outbox
    announced = outbox.c.id == str(failure_message_id(round_id, 1))
    assert trainer.count(outbox, outbox.c.message_type == "round.failed.v1", announced) == 1
    assert trainer.bus.dead_letters("trainer.commands") == []

    retry, _ = round_completed(trainer.store, round_id=round_id, round_number=20, committee=1, attempt=2)
    trainer.bus.publish(retry)
    version = wait_for(lambda: trainer._version_of(str(round_id)), seconds=90, interval=0.2)
    assert version["round_number"] == 20
    shown = next(r for r in trainer.get("/jobs")["rounds"] if r["id"] == str(round_id))
    assert (shown["state"], shown["attempt"], shown["failure_reason"]) == ("trained", 2, None)
    jobs = [j for j in trainer.get("/jobs")["jobs"] if j["round_id"] == str(round_id)]
    assert [(j["round_attempt"], j["round_state"], j["state"]) for j in jobs] == [(2, "trained", "done")]


def test_models_cli_lists_compares_promotes_and_rolls_back(
    trainer: Trainer, capsys: pytest.CaptureFixture[str]
) -> None:
    from medal.cli import main

    versions = [v["version"] for v in trainer.get("/models")["versions"]]
    current = trainer.get("/models")["current"]
    newest = max(versions)
    common = ["--project", "chest", "--server", trainer.base]
    assert main(["models", "list", *common]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split()[:3] == ["version", "status", "round"] and len(listed) == 1 + len(versions)
    assert main(["models", "compare", "1", str(newest), *common]) == 0
    assert f"version {newest} vs 1: Dice" in capsys.readouterr().out
    assert main(["models", "promote", str(newest), *common]) == 0
    assert f"version {newest} is current" in capsys.readouterr().out
    assert main(["models", "rollback", *common]) == 0
    assert trainer.get("/models")["current"] != newest
    assert main(["models", "promote", "99", *common]) == 1
    assert "no model version 99" in capsys.readouterr().err
    assert current is not None
