"""Annotation use cases: projects and the images offered for labelling."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access import Caller, audit
from medal.db.engine import insert_ignore
from medal.db.schema import annotation as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from medal.storage import ObjectNotFound
from proto import ImageIngested
from services.annotation import projects
from services.annotation.errors import ImageNotFound, ProjectNotFound
from services.annotation.projects import project_id
from services.annotation.records import Image, Project
from services.annotation.settings import ProjectSettings


async def record_ingested_image(conn: AsyncConnection, event: ImageIngested) -> bool:
    """Offer a newly ingested image for annotation (False: quarantined, or known already)."""
    if event.quarantined:
        return False
    await projects.ensure_project(conn, event.project)
    return await insert_ignore(
        conn,
        tables.images,
        {
            "id": str(event.image_id),
            "project_id": project_id(event.project),
            "study_id": str(event.study_id),
            "series_id": str(event.series_id),
            "instance_id": str(event.instance_id),
            "frame": event.frame,
            "modality": event.modality,
            "width": event.width,
            "height": event.height,
            "display_key": event.display_key,
            "training_key": event.training_key,
            "dicom_key": event.dicom_key,
            "training_offset": event.training_offset,
            "held_out": False,
            "created_at": utcnow(),
        },
        ["id"],
    )


async def create_project(platform: Platform, name: str, settings: ProjectSettings, caller: Caller) -> Project:
    async with platform.db.begin() as conn:
        await projects.create_project(conn, name, settings)
        await audit.record(conn, caller, "project-created", name, "project", name)
    return await get_project(platform, name)


async def update_settings(platform: Platform, name: str, settings: ProjectSettings, caller: Caller) -> Project:
    async with platform.db.begin() as conn:
        await projects.save_settings(conn, name, settings)
        await audit.record(conn, caller, "settings-changed", name, "project", name)
    return await get_project(platform, name)


async def _projects(
    platform: Platform, name: str | None = None, visible: frozenset[str] | None = None
) -> list[Project]:
    p, i = tables.projects, tables.images
    query = select(p).order_by(p.c.name)
    if name is not None:
        query = query.where(p.c.name == name)
    if visible is not None:
        query = query.where(p.c.name.in_(sorted(visible)))
    counts = select(i.c.project_id, func.count().label("images")).group_by(i.c.project_id)
    async with platform.db.connect() as conn:
        rows = (await conn.execute(query)).all()
        images = {row.project_id: row.images for row in await conn.execute(counts)}
    return [
        Project(
            id=row.id,
            name=row.name,
            images=images.get(row.id, 0),
            created_at=row.created_at,
            settings=ProjectSettings.model_validate(row.settings or {}),
        )
        for row in rows
    ]


async def list_projects(platform: Platform, visible: frozenset[str] | None = None) -> list[Project]:
    """Every project, or those named in ``visible`` (the caller's: ``Caller.project_filter``)."""
    return await _projects(platform, visible=visible)


async def get_project(platform: Platform, name: str) -> Project:
    found = await _projects(platform, name)
    if not found:
        raise ProjectNotFound(name)
    return found[0]


async def list_images(platform: Platform, name: str, *, limit: int, offset: int) -> tuple[int, list[Image]]:
    project = await get_project(platform, name)
    i = tables.images
    async with platform.db.connect() as conn:
        rows = await conn.execute(
            select(i).where(i.c.project_id == project.id).order_by(i.c.created_at, i.c.id).limit(limit).offset(offset)
        )
        return project.images, [Image.model_validate(row) for row in rows]


async def set_held_out(platform: Platform, image_id: str, held_out: bool, caller: Caller) -> None:
    """Put an image in (or take it out of) the evaluation set, which is never offered for labelling."""
    i, p = tables.images, tables.projects
    async with platform.db.begin() as conn:
        name = await conn.scalar(select(p.c.name).join(i, i.c.project_id == p.c.id).where(i.c.id == image_id))
        if name is None:
            raise ImageNotFound(image_id)
        await conn.execute(update(i).where(i.c.id == image_id).values(held_out=held_out))
        await audit.record(conn, caller, "held-out" if held_out else "put-back", name, "image", image_id)


async def image_png(platform: Platform, image_id: str) -> bytes:
    async with platform.db.connect() as conn:
        key = (await conn.execute(select(tables.images.c.display_key).where(tables.images.c.id == image_id))).scalar()
    if key is None:
        raise ImageNotFound(image_id)
    try:
        return await asyncio.to_thread(platform.store.get, key)
    except ObjectNotFound:
        raise ImageNotFound(image_id) from None
