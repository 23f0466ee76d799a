"""The model versions inference may predict with, and which one is current.

The trainer alone decides the current version: a model.trained.v2 is recorded as not current, and
only a model.promoted.v1 makes a version current. Promotions may reach inference out of order (one is
retried while the version it names is not known yet, the next one overtakes it), so each version keeps
the time of the promotion that made it current and an older promotion than the applied one changes
nothing: the promotion the trainer sent last wins.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.db.engine import insert_ignore
from medal.db.schema import inference as tables
from medal.db.schema.base import utcnow
from medal.unit_of_work import MessageContext
from proto.loop import ModelPromoted, ModelTrained
from services.inference.errors import ModelNotFound, ModelVersionNotKnown, NoModel

log = logging.getLogger("medal.inference")


async def record_model(ctx: MessageContext[Any], event: ModelTrained) -> bool:
    """Record a model version (not current: that is the trainer's promotion). False for a repeat."""
    row = {
        "id": str(event.model_version_id),
        "project": event.project,
        "version": event.version,
        "member_keys": list(event.member_keys),
        "training": event.training.model_dump(mode="json"),
        "current": False,
        "created_at": utcnow(),
    }
    async with ctx.unit_of_work() as uow:
        return await insert_ignore(uow.conn, tables.models, row, ["id"])


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def promote(ctx: MessageContext[Any], event: ModelPromoted) -> bool:
    """Make the named version current unless a later promotion was applied. False when it changed nothing.

    Raises :class:`ModelVersionNotKnown` (retried with back-off) until the version's model.trained.v2 is in.
    """
    m = tables.models
    version_id = str(event.model_version_id)
    promoted_at = _aware(ctx.envelope.time)
    async with ctx.unit_of_work() as uow:
        conn = uow.conn
        known = (await conn.execute(select(m.c.id).where(m.c.id == version_id, m.c.project == event.project))).first()
        if known is None:
            raise ModelVersionNotKnown(f"model version {version_id} of project {event.project} is not recorded yet")
        # Lock the project's versions (PostgreSQL) so that concurrent promotions apply one after another.
        await conn.execute(select(m.c.id).where(m.c.project == event.project).with_for_update())
        latest = (await conn.execute(select(func.max(m.c.promoted_at)).where(m.c.project == event.project))).scalar()
        if latest is not None and _aware(latest) > promoted_at:
            log.info("promotion of %s to current is older than the one applied: ignored", version_id)
            return False
        await conn.execute(update(m).where(m.c.project == event.project, m.c.id != version_id).values(current=False))
        await conn.execute(update(m).where(m.c.id == version_id).values(current=True, promoted_at=promoted_at))
    return True


async def model_for_prediction(conn: AsyncConnection, project: str, model_version_id: str | None) -> Any:
    """The chosen version of ``project``, or its current one (the one its latest promotion named)."""
    m = tables.models
    query = select(m).where(m.c.project == project)
    if model_version_id is None:
        query = query.where(m.c.current.is_(True)).order_by(m.c.version.desc()).limit(1)
    else:
        query = query.where(m.c.id == model_version_id)
    row = (await conn.execute(query)).first()
    if row is None:
        if model_version_id is None:
            raise NoModel(f"project {project} has no model yet")
        raise ModelNotFound(f"no model version {model_version_id} in project {project}")
    return row
