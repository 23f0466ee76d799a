"""The model registry: one version per trained round, listed, compared, promoted and rolled back.

The trainer alone decides which version is current. A version is ``candidate`` when registered,
``current`` while it is the project's model (exactly one per project once any is promoted) and
``retired`` after another took its place. A new version becomes current as it is registered until
a person promotes a version or rolls back (``promoted_by`` records who); from then on new versions
wait as candidates. Every change of the current version queues ``model.promoted.v1``.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access import Caller, audit, service_actor
from medal.db.schema import trainer as tables
from medal.db.schema.base import utcnow
from medal.domain_errors import Conflict, NotFound
from medal.platform import Platform
from medal.unit_of_work import UnitOfWork
from proto.loop import ModelPromoted
from services.trainer.schemas import ModelComparison, ModelVersion, ModelVersionList
from services.trainer.states import SOURCE

CANDIDATE, CURRENT, RETIRED = "candidate", "current", "retired"
NAMESPACE = uuid.UUID("0c4e8a2f-7d19-4b6e-a3f5-91d27c6b8e40")


class VersionNotFound(NotFound):
    code = "model-version-not-found"


class NothingToRollBackTo(Conflict):
    code = "nothing-to-roll-back-to"


def model_version_id(round_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"model-version:{round_id}"))


async def next_version_number(conn: AsyncConnection, project: str) -> int:
    v = tables.model_versions
    highest = (await conn.execute(select(func.max(v.c.version)).where(v.c.project == project))).scalar()
    return int(highest or 0) + 1


async def list_versions(platform: Platform, project: str) -> ModelVersionList:
    v = tables.model_versions
    async with platform.db.connect() as conn:
        rows = (await conn.execute(select(v).where(v.c.project == project).order_by(v.c.version))).all()
    versions = [ModelVersion.from_row(row) for row in rows]
    current = next((version.version for version in versions if version.status == CURRENT), None)
    return ModelVersionList(project=project, current=current, versions=versions)


async def get_version(platform: Platform, project: str, version: int) -> ModelVersion:
    async with platform.db.connect() as conn:
        return ModelVersion.from_row(await _version_row(conn, project, version))


async def _version_row(conn: AsyncConnection, project: str, version: int) -> Row[Any]:
    v = tables.model_versions
    row = (await conn.execute(select(v).where(v.c.project == project, v.c.version == version))).first()
    if row is None:
        raise VersionNotFound(f"{project} has no model version {version}")
    return row


async def promote_in(
    uow: UnitOfWork,
    project: str,
    version: int,
    *,
    promoted_by: str | None = None,
    correlation_id: uuid.UUID | None = None,
) -> bool:
    """Make ``version`` current inside the unit of work; False if it already was.

    ``promoted_by``: the caller of a promote or roll-back request; from then on new versions stay
    candidates until a person promotes one (with None, the trainer promotes a new version itself).
    """
    v = tables.model_versions
    row = await _version_row(uow.conn, project, version)
    version_id: str = row.id
    if row.status == CURRENT:
        if promoted_by is not None:
            await uow.conn.execute(update(v).where(v.c.id == version_id).values(promoted_by=promoted_by))
        return False
    await uow.conn.execute(
        update(v).where(v.c.project == project, v.c.status == CURRENT, v.c.id != version_id).values(status=RETIRED)
    )
    await uow.conn.execute(
        update(v).where(v.c.id == version_id).values(status=CURRENT, promoted_at=utcnow(), promoted_by=promoted_by)
    )
    event = ModelPromoted(project=project, model_version_id=uuid.UUID(version_id), version=version)
    await uow.emit(event, correlation_id=correlation_id)
    if promoted_by is None:  # a new version the trainer made current itself (nobody pinned one)
        details = {"version": version, "automatic": True}
        await audit.record(uow.conn, service_actor("trainer"), "promoted", project, "model", version_id, details)
    return True


async def promote(platform: Platform, project: str, version: int, *, by: Caller) -> ModelVersion:
    async with platform.unit_of_work(SOURCE) as uow:
        await _lock_project_versions(uow.conn, project)
        changed = await promote_in(uow, project, version, promoted_by=by.id)
        row = await _version_row(uow.conn, project, version)
        details = {"version": version, "changed": changed}
        await audit.record(uow.conn, by, "promoted", project, "model", row.id, details)
    return await get_version(platform, project, version)


async def rollback(platform: Platform, project: str, *, by: Caller) -> ModelVersion:
    """Make current again the newest version older than the current one that was current before."""
    v = tables.model_versions
    async with platform.unit_of_work(SOURCE) as uow:
        await _lock_project_versions(uow.conn, project)
        current = (
            await uow.conn.execute(select(v.c.version).where(v.c.project == project, v.c.status == CURRENT))
        ).scalar()
        if current is None:
            raise NothingToRollBackTo(f"{project} has no current model version")
        target = (
            await uow.conn.execute(
                select(func.max(v.c.version)).where(
                    v.c.project == project, v.c.version < current, v.c.promoted_at.is_not(None)
                )
            )
        ).scalar()
        if target is None:
            raise NothingToRollBackTo(f"no version of {project} before {current} was ever current")
        await promote_in(uow, project, int(target), promoted_by=by.id)
        row = await _version_row(uow.conn, project, int(target))
        details = {"version": int(target), "from_version": int(current)}
        await audit.record(uow.conn, by, "rolled-back", project, "model", row.id, details)
    return await get_version(platform, project, int(target))


async def _lock_project_versions(conn: AsyncConnection, project: str) -> None:
    """Serialise promotions of one project (row locks on PostgreSQL; SQLite writes are serial anyway)."""
    v = tables.model_versions
    await conn.execute(update(v).where(v.c.project == project).values(status=v.c.status))


async def compare(platform: Platform, project: str, a: int, b: int) -> ModelComparison:
    first, second = await get_version(platform, project, a), await get_version(platform, project, b)
    return ModelComparison(
        project=project,
        a=first,
        b=second,
        validation_dice_change=second.validation_dice - first.validation_dice,
        labels_added=second.labels - first.labels,
    )


async def pinned_by_person(conn: AsyncConnection, project: str) -> bool:
    """True when the project's current version was chosen by a person (promote or roll back)."""
    v = tables.model_versions
    pinned = await conn.execute(
        select(v.c.id).where(v.c.project == project, v.c.status == CURRENT, v.c.promoted_by.is_not(None))
    )
    return pinned.first() is not None
