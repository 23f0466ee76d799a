"""Projects and their settings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.db.engine import insert_ignore
from medal.db.schema import annotation as tables
from medal.db.schema.base import utcnow
from services.annotation.errors import ProjectExists, ProjectNotFound
from services.annotation.settings import ProjectSettings

PROJECT_NAMESPACE = uuid.UUID("0b7a3c52-8d0e-4f63-a1d4-5e2f6b9c7d31")


__all__ = ["ProjectExists", "ProjectNotFound", "ProjectRecord", "load_project", "load_project_by_id"]


@dataclass(frozen=True)
class ProjectRecord:
    id: str
    name: str
    settings: ProjectSettings


def project_id(name: str) -> str:
    return str(uuid.uuid5(PROJECT_NAMESPACE, name))


async def ensure_project(conn: AsyncConnection, name: str) -> None:
    """Create a project with default settings if it does not exist (ingest may arrive first)."""
    await insert_ignore(
        conn,
        tables.projects,
        {
            "id": project_id(name),
            "name": name,
            "settings": ProjectSettings().model_dump(mode="json"),
            "created_at": utcnow(),
        },
        ["id"],
    )


async def create_project(conn: AsyncConnection, name: str, settings: ProjectSettings) -> None:
    created = await insert_ignore(
        conn,
        tables.projects,
        {"id": project_id(name), "name": name, "settings": settings.model_dump(mode="json"), "created_at": utcnow()},
        ["id"],
    )
    if not created:
        raise ProjectExists(name)


async def load_project(conn: AsyncConnection, name: str) -> ProjectRecord:
    """The project named ``name`` (:class:`ProjectNotFound` when there is none)."""
    return await _load(conn, tables.projects.c.name == name, name)


async def load_project_by_id(conn: AsyncConnection, identifier: str) -> ProjectRecord:
    return await _load(conn, tables.projects.c.id == identifier, identifier)


async def _load(conn: AsyncConnection, condition: ColumnElement[bool], named: str) -> ProjectRecord:
    row = (await conn.execute(select(tables.projects).where(condition))).first()
    if row is None:
        raise ProjectNotFound(named)
    return ProjectRecord(row.id, row.name, ProjectSettings.model_validate(row.settings or {}))


async def save_settings(conn: AsyncConnection, name: str, settings: ProjectSettings) -> None:
    result = await conn.execute(
        update(tables.projects).where(tables.projects.c.name == name).values(settings=settings.model_dump(mode="json"))
    )
    if result.rowcount != 1:
        raise ProjectNotFound(name)
