"""What query keeps of each round from its round.completed.v1: the pool to score and the selection spec.

The trainer does not carry them: a model.trained.v2 names its round, and the run it starts takes the
pool and spec recorded here. A person may retry a failed round (same round id, attempt + 1, possibly a
new pool): the newer attempt replaces the older one; an older or equal attempt is a repeat.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.db.engine import insert_ignore
from medal.db.schema import query as tables
from medal.db.schema.base import utcnow
from medal.unit_of_work import MessageContext
from proto.loop import RoundCompleted, SelectionSpec
from services.query.errors import RoundNotRecorded

log = logging.getLogger("medal.query")


@dataclass(frozen=True)
class RecordedRound:
    """What a scoring run takes from the latest recorded attempt of its round."""

    pool_key: str
    selection: SelectionSpec


async def record_round(ctx: MessageContext[Any], event: RoundCompleted) -> bool:
    """Record a round's pool and selection spec; a newer attempt replaces an older one. False for a repeat."""
    t = tables.rounds
    values = {
        "round_id": str(event.round_id),
        "project": event.project,
        "round_number": event.round_number,
        "attempt": event.attempt,
        "pool_key": event.pool_key,
        "selection": event.selection.model_dump(mode="json"),
        "recorded_at": utcnow(),
    }
    async with ctx.unit_of_work() as uow:
        if await insert_ignore(uow.conn, t, values, ["round_id"]):
            return True
        # The conditional update is atomic: of two attempts delivered at once the newer one stays.
        replaced = await uow.conn.execute(
            update(t).where(t.c.round_id == values["round_id"], t.c.attempt < event.attempt).values(**values)
        )
    if replaced.rowcount == 1:
        log.info("round %s of %s: attempt %d replaces the earlier one", event.round_id, event.project, event.attempt)
        return True
    return False


async def recorded_round(conn: AsyncConnection, project: str, round_id: uuid.UUID) -> RecordedRound:
    """The round a model version was trained in; :class:`RoundNotRecorded` (retried) until it is known."""
    t = tables.rounds
    row = (await conn.execute(select(t).where(t.c.round_id == str(round_id), t.c.project == project))).first()
    if row is None:
        raise RoundNotRecorded(f"round {round_id} of project {project} is not recorded yet (round.completed.v1)")
    return RecordedRound(row.pool_key, SelectionSpec.model_validate(row.selection))
