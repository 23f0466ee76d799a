"""What the trainer is doing: member jobs with their progress and their place in the queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select

from medal.db.schema import trainer as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from services.trainer.jobs import QUEUED, ROUND_TRAINING, RUNNING


@dataclass(frozen=True)
class JobView:
    id: str
    round_id: str
    round_number: int
    member_index: int
    committee_size: int
    state: str
    attempts: int
    worker: str | None
    epoch: int | None
    max_epochs: int
    loss: float | None
    validation_dice: float | None
    eta_seconds: float | None
    heartbeat_at: datetime | None
    queue_position: int | None
    weights_key: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


async def list_jobs(platform: Platform, project: str, *, state: str | None = None, limit: int = 200) -> list[JobView]:
    """The project's jobs, newest round first; ``queue_position`` (1 = next) for jobs waiting for a worker.

    The position counts every project's waiting jobs, in the order workers claim them.
    """
    j, r = tables.jobs, tables.rounds
    now = utcnow()
    waiting = and_(
        r.c.state == ROUND_TRAINING,
        or_(j.c.state == QUEUED, and_(j.c.state == RUNNING, j.c.lease_expires_at < now)),
    )
    query = (
        select(j, r.c.round_number, r.c.committee_size)
        .select_from(j.join(r, r.c.id == j.c.round_id))
        .where(j.c.project == project)
        .order_by(r.c.created_at.desc(), j.c.member_index)
        .limit(limit)
    )
    if state is not None:
        query = query.where(j.c.state == state)
    async with platform.db.connect() as conn:
        rows = (await conn.execute(query)).all()
        queue = (
            await conn.execute(
                select(j.c.id)
                .select_from(j.join(r, r.c.id == j.c.round_id))
                .where(waiting)
                .order_by(j.c.created_at, j.c.round_id, j.c.member_index)
                .limit(10000)
            )
        ).scalars()
        positions = {job_id: index for index, job_id in enumerate(queue, start=1)}
    return [
        JobView(
            id=row.id,
            round_id=row.round_id,
            round_number=row.round_number,
            member_index=row.member_index,
            committee_size=row.committee_size,
            state=row.state,
            attempts=row.attempts,
            worker=row.lease_owner if row.state == RUNNING else None,
            epoch=row.epoch,
            max_epochs=row.max_epochs,
            loss=row.loss,
            validation_dice=row.validation_dice,
            eta_seconds=row.eta_seconds,
            heartbeat_at=row.heartbeat_at,
            queue_position=positions.get(row.id),
            weights_key=row.weights_key,
            error=row.error,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )
        for row in rows
    ]
