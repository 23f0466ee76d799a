"""Quarantined instances: listed for review, released by an authorised caller.

A quarantined instance is stored de-identified, but its ``ImageIngested`` events say
``quarantined=true`` so annotation never offers it. Releasing it publishes the events again with
``quarantined=false`` under new message ids (the first ones were already consumed and skipped).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from medal.db.messaging import add_to_outbox
from medal.db.schema import ingest as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from proto import ImageIngested, envelope_for
from services.ingest.service import ID_NAMESPACE, SOURCE


@dataclass(frozen=True)
class QuarantinedInstance:
    instance_id: str
    study_id: str
    series_id: str
    modality: str
    reason: str | None
    images: int


class NotFound(LookupError):
    pass


async def list_quarantined(platform: Platform, project: str) -> list[QuarantinedInstance]:
    i, se, s = tables.instances, tables.series, tables.studies
    query = (
        select(i.c.id, se.c.study_id, i.c.series_id, se.c.modality, i.c.quarantine_reason, i.c.frames)
        .select_from(i.join(se, se.c.id == i.c.series_id).join(s, s.c.id == se.c.study_id))
        .where(s.c.project == project, i.c.quarantined.is_(True))
        .order_by(i.c.created_at, i.c.id)
    )
    async with platform.db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [QuarantinedInstance(r.id, r.study_id, r.series_id, r.modality, r.quarantine_reason, r.frames) for r in rows]


async def release_instance(platform: Platform, project: str, instance_id: str, caller: str) -> int:
    """Release one instance; returns how many images became available (0 if it was not quarantined)."""
    i, se, s, im = tables.instances, tables.series, tables.studies, tables.images
    async with platform.db.begin() as conn:
        row = (
            await conn.execute(
                select(
                    i.c.id,
                    i.c.quarantined,
                    i.c.dicom_key,
                    se.c.id.label("series_id"),
                    se.c.modality,
                    s.c.id.label("study_id"),
                )
                .select_from(i.join(se, se.c.id == i.c.series_id).join(s, s.c.id == se.c.study_id))
                .where(i.c.id == instance_id, s.c.project == project)
            )
        ).first()
        if row is None:
            raise NotFound(instance_id)
        if not row.quarantined:
            return 0
        await conn.execute(
            i.update().where(i.c.id == instance_id).values(quarantined=False, released_at=utcnow(), released_by=caller)
        )
        images = (await conn.execute(select(im).where(im.c.instance_id == instance_id).order_by(im.c.frame))).all()
        for image in images:
            event = ImageIngested(
                project=project,
                image_id=uuid.UUID(image.id),
                study_id=uuid.UUID(row.study_id),
                series_id=uuid.UUID(row.series_id),
                instance_id=uuid.UUID(instance_id),
                frame=image.frame,
                modality=row.modality,
                width=image.width,
                height=image.height,
                display_key=image.display_key,
                display_sha256=image.display_sha256,
                training_key=image.training_key,
                training_sha256=image.training_sha256,
                training_offset=image.training_offset,
                dicom_key=row.dicom_key,
                quarantined=False,
            )
            message_id = uuid.uuid5(ID_NAMESPACE, f"event/{image.id}/released")
            await add_to_outbox(conn, envelope_for(event, source=SOURCE, message_id=message_id))
    platform.relay.notify()
    return len(images)
