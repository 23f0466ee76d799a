"""Which project an object named in a route belongs to, from annotation's own tables (for ``require``).

Each lookup answers the project's name, or None when the object does not exist; ``require`` then
answers the object's own 404 (image-not-found …), and so it does for a caller without a role in that
project: a stranger cannot tell a foreign object from a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import Table, select

from medal.access import Action, Caller, from_path, require
from medal.db.schema import annotation as tables
from medal.platform import Platform
from services.annotation.errors import ImageNotFound, RoundNotFound, TaskNotFound


async def _project_of(platform: Platform, table: Table, object_id: str) -> str | None:
    p = tables.projects
    query = select(p.c.name).join(table, table.c.project_id == p.c.id).where(table.c.id == object_id)
    async with platform.db.connect() as conn:
        name: str | None = (await conn.execute(query)).scalar()
    return name


async def image_project(platform: Platform, image_id: str) -> str | None:
    return await _project_of(platform, tables.images, image_id)


async def task_project(platform: Platform, task_id: str) -> str | None:
    return await _project_of(platform, tables.tasks, task_id)


async def round_project(platform: Platform, round_id: str) -> str | None:
    return await _project_of(platform, tables.rounds, round_id)


async def project_exists(platform: Platform, name: str) -> bool:
    async with platform.db.connect() as conn:
        found = (await conn.execute(select(tables.projects.c.id).where(tables.projects.c.name == name))).first()
    return found is not None


def in_project(action: Action) -> Any:
    """``Depends(require(action))`` for a route with ``{project}`` in its path."""
    return Depends(require(action))


def on_image(action: Action) -> Any:
    return Depends(require(action, project=from_path("image_id", image_project, missing=ImageNotFound)))


def on_task(action: Action) -> Any:
    return Depends(require(action, project=from_path("task_id", task_project, missing=TaskNotFound)))


def on_round(action: Action) -> Any:
    return Depends(require(action, project=from_path("round_id", round_project, missing=RoundNotFound)))


#: The caller of a route that shows something of the project in its path (the view right).
ProjectViewer = Annotated[Caller, in_project(Action.VIEW)]
