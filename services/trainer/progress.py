"""What the trainer is doing: the project's rounds (failed ones with their reason) and member jobs
with their progress and their place in the queue."""

from __future__ import annotations

from sqlalchemy import select

from medal.db.schema import trainer as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from services.trainer.jobs import claim_order, current_attempt_jobs, waiting_for_a_worker
from services.trainer.schemas import Job, JobList, TrainingRound

QUEUE_WINDOW = 10000


async def list_jobs(platform: Platform, project: str, *, state: str | None = None, limit: int = 200) -> JobList:
    """The project's rounds and jobs, newest round (and attempt) first.

    ``queue_position`` (1 = next) is set for jobs waiting for a worker; it counts every project's
    waiting jobs, in the order workers claim them. Jobs of a round's earlier attempts stay listed.
    """
    j, r = tables.jobs, tables.rounds
    query = (
        select(j, r.c.round_number, r.c.committee_size, r.c.state.label("round_state"))
        .select_from(j.join(r, r.c.id == j.c.round_id))
        .where(j.c.project == project)
        .order_by(r.c.created_at.desc(), j.c.round_attempt.desc(), j.c.member_index)
        .limit(limit)
    )
    if state is not None:
        query = query.where(j.c.state == state)
    async with platform.db.connect() as conn:
        rows = (await conn.execute(query)).all()
        queue = (
            await conn.execute(
                select(j.c.id)
                .select_from(current_attempt_jobs())
                .where(waiting_for_a_worker(utcnow()))
                .order_by(*claim_order())
                .limit(QUEUE_WINDOW)
            )
        ).scalars()
        positions = {job_id: index for index, job_id in enumerate(queue, start=1)}
        rounds = (
            await conn.execute(select(r).where(r.c.project == project).order_by(r.c.created_at.desc()).limit(limit))
        ).all()
    return JobList(
        project=project,
        rounds=[TrainingRound.from_row(row) for row in rounds],
        jobs=[Job.from_row(row, positions.get(row.id)) for row in rows],
    )
