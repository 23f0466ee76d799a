"""round.completed.v1 through the trainer's consumer on SQLite and PostgreSQL: new, rejected, retried, repeated.

A rejected round is recorded as failed and announced once (not dead-lettered); a person's retry
(same round id, attempt + 1, a new labelled set) trains again with new job ids, the old jobs stay
as history; anything else about a known round changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from medal.db.schema import messaging
from medal.db.schema import trainer as tables
from medal.platform import Platform
from proto.loop import RoundFailed
from proto.manifests import LabelledSet
from services.trainer.completion import StoredMember, record_member
from services.trainer.jobs import LeasePolicy, claim_next_job, fail_job
from services.trainer.progress import list_jobs
from services.trainer.rounds import job_id
from tests.trainer.conftest import deliver, outbox_messages, round_completed, write_labelled_set

POLICY = LeasePolicy(ttl_seconds=30, max_attempts=3)
MEMBER = StoredMember("weights/ab/ab.pt", "ab" * 32, 0.5, 2, 1.0)


async def rows(platform: Platform, table: Any, *where: Any) -> list[Any]:
    async with platform.db.connect() as conn:
        return list((await conn.execute(select(table).where(*where))).all())


async def count(platform: Platform, table: Any, *where: Any) -> int:
    async with platform.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar())


def empty_set(platform: Platform, round_id: uuid.UUID) -> str:
    empty = LabelledSet(project="chest", round_id=round_id, num_classes=2, items=[])
    return platform.store.put_content("manifests", empty.model_dump_json().encode(), "json", "application/json").key


@pytest.mark.parametrize("problem", ["missing", "empty", "other-round"])
async def test_a_rejected_round_is_recorded_failed_and_announced_once(platform: Platform, problem: str) -> None:
    round_id = uuid.uuid4()
    key = {
        "missing": lambda: "manifests/00/none.json",
        "empty": lambda: empty_set(platform, round_id),
        "other-round": lambda: write_labelled_set(platform.store, "chest", uuid.uuid4(), count=1),
    }[problem]()
    envelope, _ = round_completed(platform.store, labelled_set_key=key, round_id=round_id, round_number=3)
    for _ in range(2):
        await deliver(platform, envelope)  # a redelivery is a repeat

    (row,) = await rows(platform, tables.rounds, tables.rounds.c.id == str(round_id))
    assert (row.state, row.attempt, row.failure_code) == ("failed", 1, "round-rejected")
    expected = {"missing": "not in object storage", "empty": "no labelled images", "other-round": "another project"}
    assert expected[problem] in row.failure_reason and "retry the round" in row.failure_reason
    assert await count(platform, tables.jobs) == 0
    announced = await outbox_messages(platform, "round.failed.v1")
    assert len(announced) == 1
    message = announced[0][1]
    assert isinstance(message, RoundFailed)
    assert (message.round_id, message.round_number, message.attempt, message.code, message.reason) == (
        round_id,
        3,
        1,
        "round-rejected",
        row.failure_reason,
    )
    assert announced[0][0].correlation_id == envelope.correlation_id
    inbox = messaging.inbox
    assert await count(platform, inbox, inbox.c.message_id == str(envelope.id)) == 1

    # The person fixes it and retries: the round trains.
    retry, _ = round_completed(platform.store, round_id=round_id, round_number=3, attempt=2)
    await deliver(platform, retry)
    (row,) = await rows(platform, tables.rounds, tables.rounds.c.id == str(round_id))
    assert (row.state, row.attempt, row.failure_code, row.failure_reason) == ("training", 2, None, None)
    assert await count(platform, tables.jobs, tables.jobs.c.round_attempt == 2) == 2
    assert len(await outbox_messages(platform, "round.failed.v1")) == 1


async def test_a_rejected_retry_is_announced_for_its_own_attempt(platform: Platform) -> None:
    round_id = uuid.uuid4()
    first, _ = round_completed(platform.store, labelled_set_key="manifests/00/none.json", round_id=round_id)
    await deliver(platform, first)
    again, _ = round_completed(
        platform.store, labelled_set_key=empty_set(platform, round_id), round_id=round_id, attempt=2
    )
    await deliver(platform, again)
    announced = [message for _, message in await outbox_messages(platform, "round.failed.v1")]
    assert [(m.attempt, m.code) for m in announced if isinstance(m, RoundFailed)] == [
        (1, "round-rejected"),
        (2, "round-rejected"),
    ]
    (row,) = await rows(platform, tables.rounds)
    assert (row.state, row.attempt) == ("failed", 2) and "no labelled images" in row.failure_reason


async def fail_by_bad_data(platform: Platform) -> tuple[str, str]:
    envelope, event = round_completed(platform.store, committee=2, seed=5)
    await deliver(platform, envelope)
    job = await claim_next_job(platform, "w", POLICY)
    assert job is not None
    reason = "mask of image 0f0e cannot be decoded: not a readable image; submit a new mask for that image and retry"
    assert await fail_job(platform, job, reason)
    assert not await fail_job(platform, job, reason)  # failing again changes nothing
    return str(event.round_id), event.labelled_set_key


async def test_a_bad_data_round_is_announced_once_and_a_retry_registers_a_version(platform: Platform) -> None:
    round_id, old_key = await fail_by_bad_data(platform)
    announced = await outbox_messages(platform, "round.failed.v1")
    assert len(announced) == 1
    message = announced[0][1]
    assert isinstance(message, RoundFailed) and message.code == "bad-training-data"
    assert "mask of image 0f0e cannot be decoded" in message.reason and message.reason.startswith("member ")

    listed = await list_jobs(platform, "chest")
    (training_round,) = listed.rounds
    assert (training_round.state, training_round.attempt, training_round.failure_code) == (
        "failed",
        1,
        "bad-training-data",
    )
    assert training_round.failure_reason == message.reason
    assert {(job.state, job.round_state, job.round_attempt) for job in listed.jobs} == {("failed", "failed", 1)}

    retry, event = round_completed(platform.store, committee=2, seed=9, round_id=uuid.UUID(round_id), attempt=2)
    assert event.labelled_set_key != old_key
    await deliver(platform, retry)
    (row,) = await rows(platform, tables.rounds)
    assert (row.state, row.attempt, row.labelled_set_key, row.seed) == ("training", 2, event.labelled_set_key, 9)
    for _ in range(2):
        job = await claim_next_job(platform, "w", POLICY)
        assert job is not None and job.round_attempt == 2 and job.id == job_id(round_id, job.member_index, 2)
        recorded = await record_member(platform, job, MEMBER)
    assert recorded.version == 1
    (version,) = await rows(platform, tables.model_versions)
    assert (version.round_id, version.labelled_set_key, version.status) == (round_id, event.labelled_set_key, "current")
    jobs = {(row.id, row.round_attempt, row.state) for row in await rows(platform, tables.jobs)}
    assert {(job_id(round_id, m), 1, "failed") for m in range(2)} <= jobs  # attempt 1 keeps today's ids
    assert {(job_id(round_id, m, 2), 2, "done") for m in range(2)} <= jobs and len(jobs) == 4
    assert (await list_jobs(platform, "chest")).rounds[0].state == "trained"
    assert len(await outbox_messages(platform, "model.trained.v2")) == 1
    assert len(await outbox_messages(platform, "round.failed.v1")) == 1


@pytest.mark.parametrize("attempt", [1, 2])
async def test_a_repeat_about_a_known_round_changes_nothing(platform: Platform, attempt: int) -> None:
    round_id = uuid.uuid4()
    first, _ = round_completed(platform.store, round_id=round_id, attempt=2)
    await deliver(platform, first)  # training at attempt 2
    before = await rows(platform, tables.rounds)
    # Another message about the same round (attempt not newer, or newer while it still trains).
    for repeat_attempt in (attempt, 3):
        repeat, _ = round_completed(platform.store, round_id=round_id, attempt=repeat_attempt, seed=99)
        await deliver(platform, repeat)
    assert await rows(platform, tables.rounds) == before
    assert await count(platform, tables.jobs) == 2

    failed_id, _ = await fail_by_bad_data(platform)  # a failed round at attempt 1
    failed = await rows(platform, tables.rounds, tables.rounds.c.id == failed_id)
    repeat, _ = round_completed(platform.store, round_id=uuid.UUID(failed_id), attempt=1)
    await deliver(platform, repeat)
    assert await rows(platform, tables.rounds, tables.rounds.c.id == failed_id) == failed
    assert await count(platform, tables.jobs, tables.jobs.c.round_id == failed_id) == 2
    assert len(await outbox_messages(platform, "round.failed.v1")) == 1
