"""Leases on member jobs: claim (compare-and-set), heartbeat, release, fail, and the fenced finish.

A job is ``queued`` → ``running`` (leased) → ``done`` | ``failed``. Claiming is one conditional
UPDATE that succeeds for exactly one worker on SQLite and PostgreSQL alike::

    UPDATE trainer_jobs SET state='running', lease_token=:new, lease_expires_at=:now+ttl, attempts=attempts+1
    WHERE id=:id AND (state='queued' OR (state='running' AND lease_expires_at < :now))

A worker that died stops heartbeating; once its lease expires another worker claims the job again
(``attempts`` counts claims). A job whose lease expired ``max_attempts`` times is failed, and so is
its round. Every write of a lease holder carries ``WHERE lease_token=:mine`` (fencing): a worker that
lost its lease cannot overwrite the new holder's progress or result.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.db.engine import Database
from medal.db.schema import trainer as tables
from medal.db.schema.base import utcnow

__all__ = [
    "ClaimedJob",
    "LeasePolicy",
    "Progress",
    "claim_next_job",
    "fail_job",
    "finish_job",
    "heartbeat",
    "lock_round",
    "release_job",
]

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ROUND_TRAINING, ROUND_TRAINED, ROUND_FAILED = "training", "trained", "failed"


@dataclass(frozen=True)
class LeasePolicy:
    ttl_seconds: float
    max_attempts: int = 3

    def expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.ttl_seconds)


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds the lease of."""

    id: str
    round_id: str
    project: str
    member_index: int
    seed: int
    token: str
    attempts: int


@dataclass(frozen=True)
class Progress:
    epoch: int
    max_epochs: int
    loss: float | None
    validation_dice: float | None
    eta_seconds: float | None


def _claimable(now: datetime) -> Any:
    j = tables.jobs
    return or_(j.c.state == QUEUED, and_(j.c.state == RUNNING, j.c.lease_expires_at < now))


async def claim_next_job(
    db: Database, owner: str, policy: LeasePolicy, *, now: datetime | None = None
) -> ClaimedJob | None:
    """Take the oldest claimable job of a round still training; None when there is none.

    Expired leases of jobs that used up ``max_attempts`` are failed on the way (with their round).
    """
    j, r = tables.jobs, tables.rounds
    now = now or utcnow()
    async with db.connect() as conn:
        candidates = (
            await conn.execute(
                select(j.c.id, j.c.state, j.c.attempts, j.c.lease_token)
                .where(_claimable(now), j.c.round_id.in_(select(r.c.id).where(r.c.state == ROUND_TRAINING)))
                .order_by(j.c.created_at, j.c.round_id, j.c.member_index)
                .limit(20)
            )
        ).all()
    for candidate in candidates:
        if candidate.state == RUNNING and candidate.attempts >= policy.max_attempts:
            await _fail_exhausted(db, candidate.id, candidate.lease_token, candidate.attempts, now)
            continue
        token = str(uuid.uuid4())
        async with db.begin() as conn:
            claimed = await conn.execute(
                update(j)
                .where(j.c.id == candidate.id, _claimable(now))
                .values(
                    state=RUNNING,
                    lease_token=token,
                    lease_owner=owner[:128],
                    lease_expires_at=policy.expiry(now),
                    heartbeat_at=now,
                    attempts=j.c.attempts + 1,
                    started_at=func.coalesce(j.c.started_at, now),
                    epoch=None,
                    loss=None,
                    validation_dice=None,
                    eta_seconds=None,
                )
            )
            if claimed.rowcount != 1:
                continue  # another worker was faster
            row = (await conn.execute(select(j).where(j.c.id == candidate.id))).one()
        return ClaimedJob(row.id, row.round_id, row.project, row.member_index, row.seed, token, row.attempts)
    return None


async def _fail_exhausted(db: Database, job_id: str, token: str | None, attempts: int, now: datetime) -> None:
    j = tables.jobs
    async with db.begin() as conn:
        round_id = (await conn.execute(select(j.c.round_id).where(j.c.id == job_id))).scalar_one()
        await lock_round(conn, round_id, now)
        failed = await conn.execute(
            update(j)
            .where(j.c.id == job_id, j.c.state == RUNNING, j.c.lease_token == token, j.c.lease_expires_at < now)
            .values(
                state=FAILED,
                lease_expires_at=None,
                finished_at=now,
                error=f"the worker's lease expired on each of {attempts} attempts",
            )
        )
        if failed.rowcount == 1:
            await _fail_round(conn, round_id, now)


async def lock_round(conn: AsyncConnection, round_id: str, now: datetime | None = None) -> bool:
    """Serialise writers of one round (a row lock on PostgreSQL, the write lock on SQLite).

    True when the round is still training.
    """
    r = tables.rounds
    locked = await conn.execute(update(r).where(r.c.id == round_id).values(updated_at=now or utcnow()))
    if locked.rowcount != 1:
        return False
    state = (await conn.execute(select(r.c.state).where(r.c.id == round_id))).scalar_one()
    return bool(state == ROUND_TRAINING)


async def _fail_round(conn: AsyncConnection, round_id: str, now: datetime) -> None:
    r = tables.rounds
    await conn.execute(update(r).where(r.c.id == round_id, r.c.state == ROUND_TRAINING).values(state=ROUND_FAILED))


def _held(job: ClaimedJob) -> Any:
    j = tables.jobs
    return and_(j.c.id == job.id, j.c.lease_token == job.token, j.c.state == RUNNING)


async def heartbeat(
    db: Database, job: ClaimedJob, policy: LeasePolicy, progress: Progress | None = None, *, now: datetime | None = None
) -> bool:
    """Extend the lease (and record progress); False when this worker no longer holds it."""
    now = now or utcnow()
    values: dict[str, Any] = {"lease_expires_at": policy.expiry(now), "heartbeat_at": now}
    if progress is not None:
        values.update(
            epoch=progress.epoch,
            max_epochs=progress.max_epochs,
            loss=progress.loss,
            validation_dice=progress.validation_dice,
            eta_seconds=progress.eta_seconds,
        )
    async with db.begin() as conn:
        result = await conn.execute(update(tables.jobs).where(_held(job)).values(**values))
    return bool(result.rowcount == 1)


async def release_job(db: Database, job: ClaimedJob, policy: LeasePolicy, reason: str, *, count_attempt: bool) -> bool:
    """Give the job back to the queue (worker stopping, or a transient error).

    ``count_attempt=False`` (a clean shutdown) does not use up an attempt. A job out of attempts is
    failed instead, with its round. False when this worker no longer held the lease.
    """
    j = tables.jobs
    attempts = job.attempts if count_attempt else job.attempts - 1
    if attempts >= policy.max_attempts:
        return await fail_job(db, job, f"{reason} (after {attempts} attempts)")
    async with db.begin() as conn:
        result = await conn.execute(
            update(j)
            .where(_held(job))
            .values(
                state=QUEUED,
                attempts=attempts,
                lease_token=None,
                lease_owner=None,
                lease_expires_at=None,
                eta_seconds=None,
                error=reason[:2000],
            )
        )
    return bool(result.rowcount == 1)


async def fail_job(db: Database, job: ClaimedJob, reason: str) -> bool:
    """The job can never succeed (bad data): fail it and its round. False when the lease was lost."""
    j = tables.jobs
    now = utcnow()
    async with db.begin() as conn:
        await lock_round(conn, job.round_id, now)
        result = await conn.execute(
            update(j)
            .where(_held(job))
            .values(state=FAILED, lease_expires_at=None, eta_seconds=None, finished_at=now, error=reason[:2000])
        )
        if result.rowcount != 1:
            return False
        await _fail_round(conn, job.round_id, now)
    return True


async def finish_job(
    conn: AsyncConnection,
    job: ClaimedJob,
    *,
    weights_key: str,
    weights_sha256: str,
    validation_dice: float,
    train_seconds: float,
    epochs: int,
    loss: float | None = None,
    now: datetime | None = None,
) -> bool:
    """Record the member's result inside the caller's transaction, only if this worker holds the lease."""
    final_progress = {"loss": loss} if loss is not None else {}
    result = await conn.execute(
        update(tables.jobs)
        .where(_held(job))
        .values(
            state=DONE,
            lease_expires_at=None,
            weights_key=weights_key,
            weights_sha256=weights_sha256,
            validation_dice=validation_dice,
            train_seconds=train_seconds,
            epoch=epochs,
            eta_seconds=0.0,
            finished_at=now or utcnow(),
            error=None,
            **final_progress,
        )
    )
    return bool(result.rowcount == 1)
