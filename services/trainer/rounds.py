"""``round.completed.v1`` as the trainer sees it: a new round, a retry of a failed one, or a repeat.

- A new round is recorded with its M member jobs, which the job loop trains under leases
  (services.trainer.runner); a round whose labelled set is missing, empty or inconsistent is
  recorded as failed instead and announced (``round.failed.v1``, code ``round-rejected``).
- A retry (the same round id, a failed round, a higher ``attempt``) makes the round train again
  with the new labelled set, labels, seed and spec: M new jobs, whose ids include the attempt; the
  failed jobs stay as history.
- Anything else about a known round is a repeat: acknowledged, nothing changes.

The labelled set is read before the transaction (storage is slow); the decision is taken again
inside it with conditional writes, so concurrent deliveries record a round or a retry once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Literal

from sqlalchemy import select, update

from medal.db.engine import insert_ignore
from medal.db.schema import trainer as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from medal.unit_of_work import UnitOfWork
from proto.loop import RoundCompleted
from services.trainer.committee import member_seed
from services.trainer.failures import RoundFailure, announce, failed_values
from services.trainer.member import RETRY, BadTrainingData, read_manifest
from services.trainer.states import QUEUED, ROUND_FAILED, ROUND_TRAINING

log = logging.getLogger("medal.trainer")

NAMESPACE = uuid.UUID("6f1d2c8e-4b7a-4e5f-9c3d-2a1b0e9f8d75")

Outcome = Literal["recorded", "retried", "rejected", "repeat"]


def job_id(round_id: uuid.UUID | str, member_index: int, attempt: int = 1) -> str:
    """The job of a member of a round's attempt (attempt 1 keeps the ids jobs had before retries existed)."""
    name = f"job:{round_id}:{member_index}" if attempt == 1 else f"job:{round_id}:{attempt}:{member_index}"
    return str(uuid.uuid5(NAMESPACE, name))


async def inspect(platform: Platform, event: RoundCompleted) -> str | None:
    """Why the event's labelled set cannot be trained (None: it can, or the event is a repeat).

    It is read only when the event could start training: a round the trainer does not know, or a
    newer attempt of one it does (an attempt only grows, so a repeat stays a repeat).
    """
    r = tables.rounds
    async with platform.db.connect() as conn:
        known = (await conn.execute(select(r.c.attempt).where(r.c.id == str(event.round_id)))).scalar()
    if known is not None and event.attempt <= known:
        return None
    return await asyncio.to_thread(_labelled_set_problem, platform, event)


def _labelled_set_problem(platform: Platform, event: RoundCompleted) -> str | None:
    try:
        manifest = read_manifest(platform.store, event.labelled_set_key)
    except BadTrainingData as exc:
        return str(exc)
    if not manifest.items:
        return f"round {event.round_number} has no labelled images to train on; label at least one image, then {RETRY}"
    if manifest.project != event.project or manifest.round_id != event.round_id:
        return f"labelled set {event.labelled_set_key} belongs to another project or round; {RETRY}"
    if manifest.num_classes != event.training.num_classes:
        return (
            f"labelled set has {manifest.num_classes} classes, the training spec {event.training.num_classes}; "
            f"make the project's classes and its masks agree, then {RETRY}"
        )
    return None


def _round_values(uow: UnitOfWork, event: RoundCompleted, now: Any) -> dict[str, Any]:
    """What an attempt of a round trains on (set when it is recorded and again on each retry)."""
    return {
        "project": event.project,
        "round_number": event.round_number,
        "labels": event.labels,
        "labelled_set_key": event.labelled_set_key,
        "committee_size": event.committee_size,
        "training": event.training.model_dump_json(),
        "seed": event.seed,
        "attempt": event.attempt,
        "correlation_id": str(uow.correlation_id or uuid.uuid4()),
        "updated_at": now,
    }


def _state_values(failure: RoundFailure | None, now: Any) -> dict[str, Any]:
    if failure is not None:
        return failed_values(failure, now)
    return {"state": ROUND_TRAINING, "failure_code": None, "failure_reason": None, "failed_at": None}


async def record_round(uow: UnitOfWork, event: RoundCompleted, problem: str | None) -> Outcome:
    """Record a new round or a retry (with its jobs, or failed and announced when ``problem``); or a repeat.

    ``problem`` is what :func:`inspect` found; it read the labelled set whenever this can act.
    """
    r = tables.rounds
    round_id = str(event.round_id)
    now = utcnow()
    failure = RoundFailure.rejected(problem) if problem is not None else None
    values = {**_round_values(uow, event, now), **_state_values(failure, now)}
    known = (await uow.conn.execute(select(r.c.state, r.c.attempt).where(r.c.id == round_id))).first()
    if known is None:
        if not await insert_ignore(uow.conn, r, {"id": round_id, "created_at": now, **values}, ["id"]):
            return "repeat"  # recorded concurrently by another delivery
        outcome: Outcome = "recorded"
    else:
        retried = await uow.conn.execute(
            update(r).where(r.c.id == round_id, r.c.state == ROUND_FAILED, r.c.attempt < event.attempt).values(**values)
        )
        if retried.rowcount != 1:
            log.info(
                "round %s of %s (attempt %d) is %s at attempt %d: repeat ignored",
                event.round_number,
                event.project,
                event.attempt,
                known.state,
                known.attempt,
            )
            return "repeat"
        outcome = "retried"
    if failure is not None:
        await announce(uow, round_id, failure)
        log.warning("round %s of %s rejected: %s", event.round_number, event.project, failure.reason)
        return "rejected"
    await uow.conn.execute(
        tables.jobs.insert(), [_job_row(event, member, now) for member in range(event.committee_size)]
    )
    log.info(
        "round %s of %s (attempt %d): %d member jobs queued",
        event.round_number,
        event.project,
        event.attempt,
        event.committee_size,
    )
    return outcome


def _job_row(event: RoundCompleted, member: int, now: Any) -> dict[str, Any]:
    return {
        "id": job_id(event.round_id, member, event.attempt),
        "round_id": str(event.round_id),
        "round_attempt": event.attempt,
        "project": event.project,
        "member_index": member,
        "seed": member_seed(event.seed, member),
        "state": QUEUED,
        "attempts": 0,
        "max_epochs": event.training.max_epochs,
        "created_at": now,
    }
