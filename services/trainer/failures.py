"""A round that cannot be trained: recorded as failed and announced (``round.failed.v1``) in one transaction.

A round fails in three ways, each with a reason a person can act on (no PHI: image ids, never contents):

- ``round-rejected``: its labelled set is missing, empty or inconsistent (found before any job exists);
- ``bad-training-data``: a member found an image or mask it cannot decode;
- ``attempts-exhausted``: a member's workers died or failed on each of its attempts.

The transition training → failed happens once per (round, attempt), and the announcement's id is
derived from the pair, so there is exactly one ``round.failed.v1`` per attempt. The round's other
jobs of that attempt stop: queued ones are never claimed, running ones lose their lease (their
workers stop at the next epoch and discard what they trained).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update

from medal.db.schema import trainer as tables
from medal.unit_of_work import UnitOfWork
from proto.loop import RoundFailed
from services.trainer.states import FAILED, QUEUED, ROUND_FAILED, ROUND_TRAINING, RUNNING

NAMESPACE = uuid.UUID("5b2f9e7c-3d41-4a8e-b6c0-7e19d4a2f853")
MAX_REASON = 2000

FailureCode = Literal["bad-training-data", "attempts-exhausted", "round-rejected"]


@dataclass(frozen=True)
class RoundFailure:
    code: FailureCode
    reason: str

    @classmethod
    def rejected(cls, reason: str) -> RoundFailure:
        return cls("round-rejected", f"the round cannot be trained: {reason}")

    @classmethod
    def bad_data(cls, member_index: int, reason: str) -> RoundFailure:
        return cls("bad-training-data", f"member {member_index} of the committee cannot train: {reason}")

    @classmethod
    def exhausted(cls, member_index: int, attempts: int, last_error: str) -> RoundFailure:
        return cls(
            "attempts-exhausted",
            f"member {member_index} of the committee was not trained after {attempts} attempts (last: {last_error}); "
            "check the trainer workers (their logs, memory, whether they keep being stopped), then retry the round",
        )


def failure_message_id(round_id: str | uuid.UUID, attempt: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"round.failed:{round_id}:{attempt}")


def failed_values(failure: RoundFailure, now: datetime) -> dict[str, object]:
    """The round's columns once it failed."""
    return {
        "state": ROUND_FAILED,
        "failure_code": failure.code,
        "failure_reason": failure.reason[:MAX_REASON],
        "failed_at": now,
        "updated_at": now,
    }


async def announce(uow: UnitOfWork, round_id: str, failure: RoundFailure) -> None:
    """Queue ``round.failed.v1`` for the round's current attempt (read from its row)."""
    r = tables.rounds
    row = (await uow.conn.execute(select(r).where(r.c.id == round_id))).one()
    event = RoundFailed(
        project=row.project,
        round_id=uuid.UUID(round_id),
        round_number=row.round_number,
        attempt=row.attempt,
        code=failure.code,
        reason=failure.reason[:MAX_REASON],
    )
    await uow.emit(
        event,
        message_id=failure_message_id(round_id, row.attempt),
        correlation_id=uuid.UUID(row.correlation_id),
    )


async def fail_round(uow: UnitOfWork, round_id: str, attempt: int, failure: RoundFailure, now: datetime) -> bool:
    """Fail a training round's ``attempt``, stop its other jobs, announce it; False if it was not training."""
    r, j = tables.rounds, tables.jobs
    failed = await uow.conn.execute(
        update(r)
        .where(r.c.id == round_id, r.c.attempt == attempt, r.c.state == ROUND_TRAINING)
        .values(**failed_values(failure, now))
    )
    if failed.rowcount != 1:
        return False
    await uow.conn.execute(
        update(j)
        .where(j.c.round_id == round_id, j.c.round_attempt == attempt, j.c.state.in_((QUEUED, RUNNING)))
        .values(
            state=FAILED,
            lease_token=None,
            lease_expires_at=None,
            eta_seconds=None,
            finished_at=now,
            error="not trained: another member of this round failed (see the round's reason)",
        )
    )
    await announce(uow, round_id, failure)
    return True
