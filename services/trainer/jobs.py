"""Leases on member jobs: claim (compare-and-set), heartbeat, release, fail, and the fenced finish.

A job is ``queued`` → ``running`` (leased) → ``done`` | ``failed``. Claiming is one conditional
UPDATE that succeeds for exactly one worker on SQLite and PostgreSQL alike::

    UPDATE trainer_jobs SET state='running', lease_token=:new, lease_expires_at=:now+ttl, attempts=attempts+1
    WHERE id=:id AND (state='queued' OR (state='running' AND lease_expires_at < :now))

Only jobs of a round's current attempt, while it trains, are claimed. A worker that died stops
heartbeating; once its lease expires another worker claims the job again (``attempts`` counts
claims). A job whose lease expired ``max_attempts`` times is failed, and so is its round (announced
as ``round.failed.v1``, see services.trainer.failures). Every write of a lease holder carries
``WHERE lease_token=:mine`` (fencing): a worker that lost its lease cannot overwrite the new
holder's progress or result.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.db.schema import trainer as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from services.trainer.failures import RoundFailure, fail_round
from services.trainer.states import DONE, FAILED, QUEUED, ROUND_TRAINING, RUNNING, SOURCE

__all__ = [
    "ClaimedJob",
    "LeasePolicy",
    "Progress",
    "StoredMember",
    "claim_next_job",
    "current_attempt_jobs",
    "fail_job",
    "finish_job",
    "heartbeat",
    "lock_round",
    "release_job",
]

MAX_ERROR = 2000


@dataclass(frozen=True)
class LeasePolicy:
    ttl_seconds: float
    max_attempts: int = 3

    def expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.ttl_seconds)


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds the lease of (``attempts``: claims of the job; ``round_attempt``: the round's)."""

    id: str
    round_id: str
    round_attempt: int
    project: str
    member_index: int
    seed: int
    token: str
    attempts: int


@dataclass(frozen=True)
class StoredMember:
    """A trained member's weights in object storage and how its training went."""

    weights_key: str
    weights_sha256: str
    validation_dice: float
    epochs: int
    train_seconds: float
    loss: float | None = None  # training loss of the last epoch


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


def current_attempt_jobs() -> Any:
    """Jobs joined to their round, only those of the round's current attempt."""
    j, r = tables.jobs, tables.rounds
    return j.join(r, and_(r.c.id == j.c.round_id, r.c.attempt == j.c.round_attempt))


def waiting_for_a_worker(now: datetime) -> Any:
    """Jobs a worker would claim now (over :func:`current_attempt_jobs`), in the order they are claimed."""
    return and_(tables.rounds.c.state == ROUND_TRAINING, _claimable(now))


def claim_order() -> tuple[Any, ...]:
    j = tables.jobs
    return (j.c.created_at, j.c.round_id, j.c.member_index)


async def claim_next_job(
    platform: Platform, owner: str, policy: LeasePolicy, *, now: datetime | None = None
) -> ClaimedJob | None:
    """Take the oldest claimable job of a round still training; None when there is none.

    Expired leases of jobs that used up ``max_attempts`` are failed on the way (with their round).
    """
    j = tables.jobs
    now = now or utcnow()
    async with platform.db.connect() as conn:
        candidates = (
            await conn.execute(
                select(j.c.id, j.c.member_index, j.c.state, j.c.attempts, j.c.lease_token, j.c.error)
                .select_from(current_attempt_jobs())
                .where(waiting_for_a_worker(now))
                .order_by(*claim_order())
                .limit(20)
            )
        ).all()
    for candidate in candidates:
        if candidate.state == RUNNING and candidate.attempts >= policy.max_attempts:
            await _fail_exhausted(platform, candidate, now)
            continue
        token = str(uuid.uuid4())
        async with platform.db.begin() as conn:
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
        return ClaimedJob(
            row.id, row.round_id, row.round_attempt, row.project, row.member_index, row.seed, token, row.attempts
        )
    return None


async def _fail_exhausted(platform: Platform, candidate: Any, now: datetime) -> None:
    """A job whose lease expired on its last attempt: fail it and its round."""
    j = tables.jobs
    error = f"the worker's lease expired on each of {candidate.attempts} attempts"
    last = "its worker stopped heartbeating (crashed, killed or stalled)"
    if candidate.error:
        error, last = f"{error}; before that: {candidate.error}", f"{last}; before that: {candidate.error}"
    expired = and_(
        j.c.id == candidate.id,
        j.c.state == RUNNING,
        j.c.lease_token == candidate.lease_token,
        j.c.lease_expires_at < now,
    )
    failure = RoundFailure.exhausted(candidate.member_index, candidate.attempts, last)
    await _fail(platform, candidate.id, expired, error, failure, now)


async def _lock(conn: AsyncConnection, round_id: str, now: datetime) -> Any:
    """Serialise writers of one round (a row lock on PostgreSQL, the write lock on SQLite); its state row."""
    r = tables.rounds
    await conn.execute(update(r).where(r.c.id == round_id).values(updated_at=now))
    return (await conn.execute(select(r.c.state, r.c.attempt).where(r.c.id == round_id))).first()


async def lock_round(conn: AsyncConnection, job: ClaimedJob, now: datetime | None = None) -> bool:
    """Lock the job's round; True when it still trains the job's attempt."""
    row = await _lock(conn, job.round_id, now or utcnow())
    return row is not None and row.state == ROUND_TRAINING and row.attempt == job.round_attempt


def _held(job: ClaimedJob) -> Any:
    j = tables.jobs
    return and_(j.c.id == job.id, j.c.lease_token == job.token, j.c.state == RUNNING)


def _lease_ended(state: str, error: str | None, **more: Any) -> dict[str, Any]:
    """The lease columns of a job given back (``queued``) or ended (``done`` / ``failed``)."""
    return {
        "state": state,
        "lease_expires_at": None,
        "error": None if error is None else error[:MAX_ERROR],
        **more,
    }


async def heartbeat(
    platform: Platform,
    job: ClaimedJob,
    policy: LeasePolicy,
    progress: Progress | None = None,
    *,
    now: datetime | None = None,
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
    async with platform.db.begin() as conn:
        result = await conn.execute(update(tables.jobs).where(_held(job)).values(**values))
    return bool(result.rowcount == 1)


async def release_job(
    platform: Platform, job: ClaimedJob, policy: LeasePolicy, reason: str, *, count_attempt: bool
) -> bool:
    """Give the job back to the queue (worker stopping, or a transient error).

    ``count_attempt=False`` (a clean shutdown) does not use up an attempt. A job out of attempts is
    failed instead, with its round. False when this worker no longer held the lease.
    """
    attempts = job.attempts if count_attempt else job.attempts - 1
    if attempts >= policy.max_attempts:
        failure = RoundFailure.exhausted(job.member_index, attempts, reason)
        return await _fail(platform, job.id, _held(job), f"{reason} (after {attempts} attempts)", failure, utcnow())
    async with platform.db.begin() as conn:
        values = _lease_ended(QUEUED, reason, attempts=attempts, lease_token=None, lease_owner=None, eta_seconds=None)
        result = await conn.execute(update(tables.jobs).where(_held(job)).values(**values))
    return bool(result.rowcount == 1)


async def fail_job(platform: Platform, job: ClaimedJob, reason: str) -> bool:
    """The job can never succeed (bad training data): fail it and its round. False when the lease was lost."""
    return await _fail(platform, job.id, _held(job), reason, RoundFailure.bad_data(job.member_index, reason), utcnow())


async def _fail(
    platform: Platform, job_id: str, still_ours: Any, error: str, failure: RoundFailure, now: datetime
) -> bool:
    """Fail the job (if ``still_ours`` holds) and its round's attempt, announcing the round's failure."""
    j = tables.jobs
    async with platform.unit_of_work(SOURCE) as uow:
        row = (await uow.conn.execute(select(j.c.round_id, j.c.round_attempt).where(j.c.id == job_id))).one()
        await _lock(uow.conn, row.round_id, now)
        values = _lease_ended(FAILED, error, eta_seconds=None, finished_at=now)
        if (await uow.conn.execute(update(j).where(still_ours).values(**values))).rowcount != 1:
            return False
        await fail_round(uow, row.round_id, row.round_attempt, failure, now)
    return True


async def finish_job(conn: AsyncConnection, job: ClaimedJob, member: StoredMember, now: datetime) -> bool:
    """Record the member's result inside the caller's transaction, only if this worker holds the lease."""
    final_progress = {"loss": member.loss} if member.loss is not None else {}
    values = _lease_ended(
        DONE,
        None,
        weights_key=member.weights_key,
        weights_sha256=member.weights_sha256,
        validation_dice=member.validation_dice,
        train_seconds=member.train_seconds,
        epoch=member.epochs,
        eta_seconds=0.0,
        finished_at=now,
        **final_progress,
    )
    result = await conn.execute(update(tables.jobs).where(_held(job)).values(**values))
    return bool(result.rowcount == 1)
