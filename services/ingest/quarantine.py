"""Quarantined instances: listed for review, released by an authorised caller.

A quarantined instance is stored de-identified, but its ``ImageIngested`` events say
``quarantined=true`` so annotation never offers it. Releasing it publishes the events again with
``quarantined=false`` under new message ids (the first ones were already consumed and skipped),
and records who released it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access import Caller, acting, audit
from medal.db.schema import ingest as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from services.ingest.errors import InstanceNotFound
from services.ingest.schemas import QuarantinedInstance, ReleaseResponse
from services.ingest.service import SOURCE, announce_images


async def list_quarantined(platform: Platform, project: str) -> list[QuarantinedInstance]:
    i, se, s = tables.instances, tables.series, tables.studies
    query = (
        select(
            i.c.id.label("instance_id"),
            se.c.study_id,
            i.c.series_id,
            se.c.modality,
            i.c.quarantine_reason.label("reason"),
            i.c.frames.label("images"),
        )
        .select_from(i.join(se, se.c.id == i.c.series_id).join(s, s.c.id == se.c.study_id))
        .where(s.c.project == project, i.c.quarantined.is_(True))
        .order_by(i.c.created_at, i.c.id)
    )
    async with platform.db.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [QuarantinedInstance.model_validate(dict(row)) for row in rows]


async def release_instance(platform: Platform, project: str, instance_id: str, caller: Caller | str) -> ReleaseResponse:
    """Release one instance on behalf of the caller: how many images became available (0 if it was not
    quarantined) and who released it, recorded in the audit trail. Raises :class:`InstanceNotFound`."""
    actor = acting(caller)
    released_by = actor.id
    i, se, s, im = tables.instances, tables.series, tables.studies, tables.images
    async with platform.unit_of_work(SOURCE) as uow:
        row = (
            await uow.conn.execute(
                select(
                    i.c.id,
                    i.c.quarantined,
                    i.c.quarantine_reason,
                    i.c.released_by,
                    i.c.dicom_key,
                    i.c.series_id,
                    se.c.study_id,
                    se.c.modality,
                )
                .select_from(i.join(se, se.c.id == i.c.series_id).join(s, s.c.id == se.c.study_id))
                .where(i.c.id == instance_id, s.c.project == project)
            )
        ).first()
        if row is None:
            raise InstanceNotFound("no such instance in this project")
        if not row.quarantined:
            return ReleaseResponse(instance_id=instance_id, released_images=0, released_by=row.released_by)
        released = await uow.conn.execute(
            i.update()
            .where(i.c.id == instance_id, i.c.quarantined.is_(True))
            .values(quarantined=False, released_at=utcnow(), released_by=released_by[:64])
        )
        if released.rowcount == 0:  # a concurrent release of the same instance committed first
            return await _released(uow.conn, instance_id)
        found = await uow.conn.execute(select(im).where(im.c.instance_id == instance_id).order_by(im.c.frame))
        images = [dict(image) for image in found.mappings()]
        await announce_images(uow, project, dict(row._mapping), images, released=True)
        details = {"images": len(images), "reason": row.quarantine_reason or ""}
        await audit.record(uow.conn, actor, "released", project, "instance", instance_id, details)
    return ReleaseResponse(instance_id=instance_id, released_images=len(images), released_by=released_by[:64])


async def _released(conn: AsyncConnection, instance_id: str) -> ReleaseResponse:
    found = await conn.scalar(select(tables.instances.c.released_by).where(tables.instances.c.id == instance_id))
    return ReleaseResponse(instance_id=instance_id, released_images=0, released_by=found)
