"""A round whose training failed: recorded from the trainer's round.failed.v1, shown, and retried by a person.

A retry rebuilds the round's labelled set and pool from today's masks (a corrected mask submitted
meanwhile is in it) and announces the same round again with the next attempt number; the trainer
then trains it afresh. Only the newest attempt's failure counts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access import Caller, acting, audit
from medal.db.schema import annotation as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from proto import RoundFailed
from services.annotation import projects, rounds
from services.annotation.errors import RoundNotFailed, RoundNotFound
from services.annotation.records import Round, RoundFailure

SOURCE = "annotation"
FAILED = "training-failed"


async def record_failure(conn: AsyncConnection, event: RoundFailed) -> bool:
    """Mark the round's training failed, with the trainer's code and reason; False when it changes nothing.

    A failure of an attempt older than the round's current one is stale (a retry is under way) and ignored.
    """
    project = await projects.load_project(conn, event.project)
    row = await _round_row(conn, project.id, str(event.round_id))
    if row.state == "open" or event.attempt < row.attempt:
        return False
    r = tables.rounds
    changed = await conn.execute(
        update(r)
        .where(r.c.id == row.id, r.c.attempt <= event.attempt)
        .values(
            state=FAILED,
            attempt=event.attempt,
            failure_code=event.code,
            failure_reason=event.reason,
            failed_at=row.failed_at if row.state == FAILED and row.attempt == event.attempt else utcnow(),
        )
    )
    return changed.rowcount == 1


async def retry_round(
    platform: Platform, project_name: str, round_id: str, caller: Caller | str | None = None
) -> Round:
    """Train a failed round again on today's labels: round.completed.v1 with attempt + 1 (409 unless it failed)."""
    async with platform.unit_of_work(SOURCE) as uow:
        project = await projects.load_project(uow.conn, project_name)
        row = await _round_row(uow.conn, project.id, round_id)
        if row.state != FAILED:
            raise RoundNotFailed(f"round {row.number} is {row.state}: only a round whose training failed is retried")
        attempt = row.attempt + 1
        await rounds.emit_training(platform, uow, project, row, attempt=attempt)
        r = tables.rounds
        await uow.conn.execute(
            update(r)
            .where(r.c.id == row.id)
            .values(
                state="completed",
                attempt=attempt,
                completed_at=utcnow(),
                failure_code=None,
                failure_reason=None,
                failed_at=None,
            )
        )
        details = {"round_number": row.number, "attempt": attempt}
        await audit.record(uow.conn, acting(caller), "round-retried", project.name, "round", row.id, details)
        (retried,) = await rounds.round_summaries(uow.conn, project.id, row.id)
    return retried


async def latest_failure(conn: AsyncConnection, project_id: str) -> RoundFailure | None:
    """The failure of the project's newest trained round, if its training failed (what blocks the loop)."""
    r = tables.rounds
    newest = (
        await conn.execute(
            select(r.c.id, r.c.state)
            .where(r.c.project_id == project_id, r.c.state != "open")
            .order_by(r.c.number.desc())
            .limit(1)
        )
    ).first()
    if newest is None or newest.state != FAILED:
        return None
    (failed,) = await rounds.round_summaries(conn, project_id, newest.id)
    return failed.failure


async def _round_row(conn: AsyncConnection, project_id: str, round_id: str) -> Any:
    r = tables.rounds
    row = (await conn.execute(select(r).where(r.c.id == round_id, r.c.project_id == project_id))).first()
    if row is None:
        raise RoundNotFound(round_id)
    return row
