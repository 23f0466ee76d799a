"""Member job leases on SQLite and PostgreSQL: claim, heartbeat, expiry, fencing, attempts cap."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from medal.db.schema import trainer as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from services.trainer import rounds
from services.trainer.completion import StoredMember, record_member
from services.trainer.jobs import LeasePolicy, Progress, claim_next_job, heartbeat, release_job
from tests.trainer.conftest import round_completed

POLICY = LeasePolicy(ttl_seconds=30, max_attempts=3)
MEMBER = StoredMember("weights/ab/ab.pt", "ab" * 32, 0.5, 2, 1.0)


async def recorded_round(platform: Platform, committee: int) -> str:
    envelope, event = round_completed(platform.store, committee=committee)
    assert await rounds.record_round(platform, envelope, event)
    return str(event.round_id)


async def job_rows(platform: Platform) -> list[tuple[int, str, int]]:
    j = tables.jobs
    async with platform.db.connect() as conn:
        rows = (await conn.execute(select(j.c.member_index, j.c.state, j.c.attempts).order_by(j.c.member_index))).all()
    return [tuple(row) for row in rows]


async def test_each_job_is_claimed_by_one_worker(platform: Platform) -> None:
    await recorded_round(platform, committee=2)
    claims = await asyncio.gather(*(claim_next_job(platform.db, f"w{i}", POLICY) for i in range(5)))
    won = [claim for claim in claims if claim is not None]
    assert sorted(claim.member_index for claim in won) == [0, 1]
    assert all(claim.attempts == 1 for claim in won)
    assert await claim_next_job(platform.db, "late", POLICY) is None
    assert await job_rows(platform) == [(0, "running", 1), (1, "running", 1)]


async def test_heartbeat_extends_the_lease_and_records_progress(platform: Platform) -> None:
    await recorded_round(platform, committee=1)
    now = utcnow()
    job = await claim_next_job(platform.db, "w1", POLICY, now=now)
    assert job is not None
    later = now + timedelta(seconds=25)
    assert await heartbeat(platform.db, job, POLICY, Progress(1, 2, 0.8, 0.4, 3.0), now=later)
    # At now + 40 s the original lease (30 s) would have expired, the renewed one (until +55 s) has not.
    assert await claim_next_job(platform.db, "w2", POLICY, now=now + timedelta(seconds=40)) is None
    j = tables.jobs
    async with platform.db.connect() as conn:
        row = (await conn.execute(select(j))).one()
    assert (row.epoch, row.loss, row.validation_dice, row.eta_seconds) == (1, 0.8, 0.4, 3.0)


async def test_an_expired_lease_is_reclaimed_and_the_stale_worker_is_fenced_out(platform: Platform) -> None:
    round_id = await recorded_round(platform, committee=1)
    stale = await claim_next_job(platform.db, "crashed", POLICY)
    assert stale is not None
    after_expiry = utcnow() + timedelta(seconds=POLICY.ttl_seconds + 1)
    fresh = await claim_next_job(platform.db, "healthy", POLICY, now=after_expiry)
    assert fresh is not None and fresh.id == stale.id and fresh.attempts == 2 and fresh.token != stale.token

    # The stale worker wakes up: it can neither heartbeat nor record its result nor give the job back.
    assert not await heartbeat(platform.db, stale, POLICY)
    assert not (await record_member(platform, stale, MEMBER)).accepted
    assert not await release_job(platform.db, stale, POLICY, "late", count_attempt=True)
    assert await job_rows(platform) == [(0, "running", 2)]

    recorded = await record_member(platform, fresh, MEMBER)
    assert recorded.accepted and recorded.version == 1
    assert await job_rows(platform) == [(0, "done", 2)]
    v = tables.model_versions
    async with platform.db.connect() as conn:
        versions = (await conn.execute(select(v.c.round_id, v.c.version, v.c.status))).all()
    assert [tuple(row) for row in versions] == [(round_id, 1, "current")]
    # A second result for the same round changes nothing.
    assert not (await record_member(platform, fresh, MEMBER)).accepted


async def test_a_job_whose_lease_expires_max_attempts_times_fails_with_its_round(platform: Platform) -> None:
    round_id = await recorded_round(platform, committee=1)
    now = utcnow()
    for attempt in range(1, POLICY.max_attempts + 1):
        job = await claim_next_job(platform.db, f"w{attempt}", POLICY, now=now)
        assert job is not None and job.attempts == attempt
        now += timedelta(seconds=POLICY.ttl_seconds + 1)
    assert await claim_next_job(platform.db, "next", POLICY, now=now) is None
    j, r = tables.jobs, tables.rounds
    async with platform.db.connect() as conn:
        job_row = (await conn.execute(select(j.c.state, j.c.error))).one()
        round_state = (await conn.execute(select(r.c.state).where(r.c.id == round_id))).scalar()
    assert job_row.state == "failed" and "3 attempts" in job_row.error
    assert round_state == "failed"


async def test_a_stopping_worker_gives_the_job_back_without_using_an_attempt(platform: Platform) -> None:
    await recorded_round(platform, committee=1)
    job = await claim_next_job(platform.db, "w1", POLICY)
    assert job is not None
    assert await release_job(platform.db, job, POLICY, "worker stopped", count_attempt=False)
    assert await job_rows(platform) == [(0, "queued", 0)]
    again = await claim_next_job(platform.db, "w2", POLICY)
    assert again is not None and again.attempts == 1
