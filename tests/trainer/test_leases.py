"""Member job leases on SQLite and PostgreSQL: claim, heartbeat, expiry, fencing, attempts cap.

A round that runs out of attempts fails and is announced once; its other jobs stop.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from medal.db.schema import trainer as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from proto.loop import RoundFailed
from services.trainer.completion import StoredMember, record_member
from services.trainer.failures import failure_message_id
from services.trainer.jobs import LeasePolicy, Progress, claim_next_job, heartbeat, release_job
from tests.trainer.conftest import deliver, outbox_messages, round_completed

POLICY = LeasePolicy(ttl_seconds=30, max_attempts=3)
MEMBER = StoredMember("weights/ab/ab.pt", "ab" * 32, 0.5, 2, 1.0)


async def recorded_round(platform: Platform, committee: int) -> str:
    envelope, event = round_completed(platform.store, committee=committee)
    await deliver(platform, envelope)
    return str(event.round_id)


async def job_rows(platform: Platform) -> list[tuple[int, str, int]]:
    j = tables.jobs
    async with platform.db.connect() as conn:
        rows = (await conn.execute(select(j.c.member_index, j.c.state, j.c.attempts).order_by(j.c.member_index))).all()
    return [tuple(row) for row in rows]


async def round_state(platform: Platform, round_id: str) -> tuple[str, int, str | None, str | None]:
    r = tables.rounds
    async with platform.db.connect() as conn:
        row = (
            await conn.execute(
                select(r.c.state, r.c.attempt, r.c.failure_code, r.c.failure_reason).where(r.c.id == round_id)
            )
        ).one()
    return row.state, row.attempt, row.failure_code, row.failure_reason


async def test_each_job_is_claimed_by_one_worker(platform: Platform) -> None:
    await recorded_round(platform, committee=2)
    claims = await asyncio.gather(*(claim_next_job(platform, f"w{i}", POLICY) for i in range(5)))
    won = [claim for claim in claims if claim is not None]
    assert sorted(claim.member_index for claim in won) == [0, 1]
    assert all(claim.attempts == 1 and claim.round_attempt == 1 for claim in won)
    assert await claim_next_job(platform, "late", POLICY) is None
    assert await job_rows(platform) == [(0, "running", 1), (1, "running", 1)]


async def test_heartbeat_extends_the_lease_and_records_progress(platform: Platform) -> None:
    await recorded_round(platform, committee=1)
    now = utcnow()
    job = await claim_next_job(platform, "w1", POLICY, now=now)
    assert job is not None
    later = now + timedelta(seconds=25)
    assert await heartbeat(platform, job, POLICY, Progress(1, 2, 0.8, 0.4, 3.0), now=later)
    # At now + 40 s the original lease (30 s) would have expired, the renewed one (until +55 s) has not.
    assert await claim_next_job(platform, "w2", POLICY, now=now + timedelta(seconds=40)) is None
    j = tables.jobs
    async with platform.db.connect() as conn:
        row = (await conn.execute(select(j))).one()
    assert (row.epoch, row.loss, row.validation_dice, row.eta_seconds) == (1, 0.8, 0.4, 3.0)


async def test_an_expired_lease_is_reclaimed_and_the_stale_worker_is_fenced_out(platform: Platform) -> None:
    round_id = await recorded_round(platform, committee=1)
    stale = await claim_next_job(platform, "crashed", POLICY)
    assert stale is not None
    after_expiry = utcnow() + timedelta(seconds=POLICY.ttl_seconds + 1)
    fresh = await claim_next_job(platform, "healthy", POLICY, now=after_expiry)
    assert fresh is not None and fresh.id == stale.id and fresh.attempts == 2 and fresh.token != stale.token

    # The stale worker wakes up: it can neither heartbeat nor record its result nor give the job back.
    assert not await heartbeat(platform, stale, POLICY)
    assert not (await record_member(platform, stale, MEMBER)).accepted
    assert not await release_job(platform, stale, POLICY, "late", count_attempt=True)
    assert await job_rows(platform) == [(0, "running", 2)]

    recorded = await record_member(platform, fresh, MEMBER)
    assert recorded.accepted and recorded.version == 1
    assert await job_rows(platform) == [(0, "done", 2)]
    v = tables.model_versions
    async with platform.db.connect() as conn:
        versions = (await conn.execute(select(v.c.round_id, v.c.version, v.c.status, v.c.promoted_by))).all()
    assert [tuple(row) for row in versions] == [(round_id, 1, "current", None)]
    # A second result for the same round changes nothing.
    assert not (await record_member(platform, fresh, MEMBER)).accepted
    trained = await outbox_messages(platform, "model.trained.v2")
    assert len(trained) == 1 and not hasattr(trained[0][1], "pool_key")
    assert len(await outbox_messages(platform, "model.promoted.v1")) == 1
    assert await outbox_messages(platform, "round.failed.v1") == []


async def test_a_job_whose_lease_expires_max_attempts_times_fails_and_announces_its_round(platform: Platform) -> None:
    round_id = await recorded_round(platform, committee=2)
    now = utcnow()
    sibling = await claim_next_job(platform, "sibling", POLICY, now=now + timedelta(days=1))
    assert sibling is not None  # member 0 is held by a healthy worker (its lease ends a day later)
    for attempt in range(1, POLICY.max_attempts + 1):
        job = await claim_next_job(platform, f"w{attempt}", POLICY, now=now)
        assert job is not None and job.attempts == attempt and job.member_index == 1
        now += timedelta(seconds=POLICY.ttl_seconds + 1)
    assert await claim_next_job(platform, "next", POLICY, now=now) is None
    assert await claim_next_job(platform, "again", POLICY, now=now) is None  # failing is done once
    j = tables.jobs
    async with platform.db.connect() as conn:
        errors = dict((await conn.execute(select(j.c.member_index, j.c.error))).all())
    assert await job_rows(platform) == [(0, "failed", 1), (1, "failed", 3)]
    assert "3 attempts" in errors[1] and "another member" in errors[0]
    state, attempt, code, reason = await round_state(platform, round_id)
    assert (state, attempt, code) == ("failed", 1, "attempts-exhausted")
    assert reason is not None and "member 1" in reason and "retry the round" in reason

    announced = await outbox_messages(platform, "round.failed.v1")
    assert len(announced) == 1
    envelope, message = announced[0]
    assert isinstance(message, RoundFailed) and envelope.id == failure_message_id(round_id, 1)
    assert (str(message.round_id), message.attempt, message.code, message.reason) == (round_id, 1, code, reason)
    # The sibling's worker lost its lease with the round: it stops and cannot record its member.
    assert not await heartbeat(platform, sibling, POLICY)
    assert not (await record_member(platform, sibling, MEMBER)).accepted


async def test_a_job_failing_on_every_attempt_fails_its_round_once(platform: Platform) -> None:
    round_id = await recorded_round(platform, committee=1)
    for attempt in range(1, POLICY.max_attempts + 1):
        job = await claim_next_job(platform, "w", POLICY)
        assert job is not None and job.attempts == attempt
        assert await release_job(platform, job, POLICY, "RuntimeError: CUDA out of memory", count_attempt=True)
    assert await job_rows(platform) == [(0, "failed", 3)]
    state, _, code, reason = await round_state(platform, round_id)
    assert (state, code) == ("failed", "attempts-exhausted") and "CUDA out of memory" in str(reason)
    assert len(await outbox_messages(platform, "round.failed.v1")) == 1
    assert await claim_next_job(platform, "w", POLICY) is None


async def test_a_stopping_worker_gives_the_job_back_without_using_an_attempt(platform: Platform) -> None:
    await recorded_round(platform, committee=1)
    job = await claim_next_job(platform, "w1", POLICY)
    assert job is not None
    assert await release_job(platform, job, POLICY, "worker stopped", count_attempt=False)
    assert await job_rows(platform) == [(0, "queued", 0)]
    again = await claim_next_job(platform, "w2", POLICY)
    assert again is not None and again.attempts == 1
