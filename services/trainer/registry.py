"""The model registry: one version per trained round, listed, compared, promoted and rolled back.

A version is ``candidate`` when registered, ``current`` while it is the project's model (exactly one
per project once any is promoted) and ``retired`` after another took its place. A project's first
version becomes current at once. Promotion and roll-back queue ``model.promoted.v1``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.db.messaging import add_to_outbox
from medal.db.schema import trainer as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from proto.envelope import envelope_for
from proto.loop import ModelPromoted

CANDIDATE, CURRENT, RETIRED = "candidate", "current", "retired"
SOURCE = "trainer"
NAMESPACE = uuid.UUID("0c4e8a2f-7d19-4b6e-a3f5-91d27c6b8e40")


class VersionNotFound(LookupError):
    pass


class NothingToRollBackTo(LookupError):
    pass


@dataclass(frozen=True)
class MemberInfo:
    member_index: int
    weights_key: str
    weights_sha256: str
    validation_dice: float
    epochs: int
    train_seconds: float
    attempts: int


@dataclass(frozen=True)
class ModelVersion:
    id: str
    project: str
    version: int
    round_id: str
    round_number: int
    labels: int
    labelled_set_key: str
    validation_dice: float
    status: str
    members: list[MemberInfo]
    training: dict[str, Any]
    created_at: datetime
    promoted_at: datetime | None


def model_version_id(round_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"model-version:{round_id}"))


def _version(row: Any) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        project=row.project,
        version=row.version,
        round_id=row.round_id,
        round_number=row.round_number,
        labels=row.labels,
        labelled_set_key=row.labelled_set_key,
        validation_dice=row.validation_dice,
        status=row.status,
        members=[MemberInfo(**member) for member in json.loads(row.members)],
        training=json.loads(row.training),
        created_at=row.created_at,
        promoted_at=row.promoted_at,
    )


async def next_version_number(conn: AsyncConnection, project: str) -> int:
    v = tables.model_versions
    highest = (await conn.execute(select(func.max(v.c.version)).where(v.c.project == project))).scalar()
    return int(highest or 0) + 1


async def list_versions(platform: Platform, project: str) -> list[ModelVersion]:
    v = tables.model_versions
    async with platform.db.connect() as conn:
        rows = (await conn.execute(select(v).where(v.c.project == project).order_by(v.c.version))).all()
    return [_version(row) for row in rows]


async def get_version(platform: Platform, project: str, version: int) -> ModelVersion:
    v = tables.model_versions
    async with platform.db.connect() as conn:
        row = (await conn.execute(select(v).where(v.c.project == project, v.c.version == version))).first()
    if row is None:
        raise VersionNotFound(f"{project} has no model version {version}")
    return _version(row)


async def promote_in(
    conn: AsyncConnection, project: str, version: int, correlation_id: uuid.UUID | None, *, by_person: bool = False
) -> bool:
    """Make ``version`` current inside the caller's transaction; False if it already was.

    ``by_person``: a promote or roll-back request; from then on new versions stay candidates until a
    person promotes one (otherwise each new version becomes current as it is registered).
    """
    v = tables.model_versions
    row = (await conn.execute(select(v).where(v.c.project == project, v.c.version == version))).first()
    if row is None:
        raise VersionNotFound(f"{project} has no model version {version}")
    if row.status == CURRENT:
        if by_person and not row.promoted_by_person:
            await conn.execute(update(v).where(v.c.id == row.id).values(promoted_by_person=True))
        return False
    now = utcnow()
    await conn.execute(
        update(v).where(v.c.project == project, v.c.status == CURRENT, v.c.id != row.id).values(status=RETIRED)
    )
    await conn.execute(
        update(v).where(v.c.id == row.id).values(status=CURRENT, promoted_at=now, promoted_by_person=by_person)
    )
    event = ModelPromoted(project=project, model_version_id=uuid.UUID(row.id), version=version)
    await add_to_outbox(conn, envelope_for(event, source=SOURCE, correlation_id=correlation_id))
    return True


async def promote(platform: Platform, project: str, version: int) -> ModelVersion:
    async with platform.db.begin() as conn:
        await _lock_project_versions(conn, project)
        changed = await promote_in(conn, project, version, None, by_person=True)
    if changed:
        platform.relay.notify()
    return await get_version(platform, project, version)


async def rollback(platform: Platform, project: str) -> ModelVersion:
    """Make current again the newest version older than the current one that was current before."""
    v = tables.model_versions
    async with platform.db.begin() as conn:
        await _lock_project_versions(conn, project)
        current = (
            await conn.execute(select(v.c.version).where(v.c.project == project, v.c.status == CURRENT))
        ).scalar()
        if current is None:
            raise NothingToRollBackTo(f"{project} has no current model version")
        target = (
            await conn.execute(
                select(func.max(v.c.version)).where(
                    v.c.project == project, v.c.version < current, v.c.promoted_at.is_not(None)
                )
            )
        ).scalar()
        if target is None:
            raise NothingToRollBackTo(f"no version of {project} before {current} was ever current")
        await promote_in(conn, project, int(target), None, by_person=True)
    platform.relay.notify()
    return await get_version(platform, project, int(target))


async def _lock_project_versions(conn: AsyncConnection, project: str) -> None:
    """Serialise promotions of one project (row locks on PostgreSQL; SQLite writes are serial anyway)."""
    v = tables.model_versions
    await conn.execute(update(v).where(v.c.project == project).values(status=v.c.status))


@dataclass(frozen=True)
class Comparison:
    a: ModelVersion
    b: ModelVersion
    validation_dice_change: float
    labels_added: int


async def compare(platform: Platform, project: str, a: int, b: int) -> Comparison:
    first, second = await get_version(platform, project, a), await get_version(platform, project, b)
    return Comparison(
        first,
        second,
        validation_dice_change=second.validation_dice - first.validation_dice,
        labels_added=second.labels - first.labels,
    )


async def pinned_by_person(conn: AsyncConnection, project: str) -> bool:
    """True when the project's current version was chosen by a person (promote or roll back)."""
    v = tables.model_versions
    pinned = await conn.execute(
        select(v.c.id).where(v.c.project == project, v.c.status == CURRENT, v.c.promoted_by_person.is_(True))
    )
    return pinned.first() is not None
