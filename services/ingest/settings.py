"""Per-project ingest settings: the date option of de-identification and the display window preset."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from medal.db.engine import insert_ignore
from medal.db.schema import ingest as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from services.ingest.deid import DatePolicy, DeidOptions
from services.ingest.raster import Window


@dataclass(frozen=True)
class ProjectSettings:
    date_policy: DatePolicy = "shift"
    preset: Window | None = None

    @property
    def deid_options(self) -> DeidOptions:
        return DeidOptions(dates=self.date_policy)


async def project_settings(platform: Platform, project: str) -> ProjectSettings:
    async with platform.db.connect() as conn:
        row = (
            await conn.execute(select(tables.project_settings).where(tables.project_settings.c.project == project))
        ).first()
    if row is None:
        return ProjectSettings()
    preset = None
    if row.window_center is not None and row.window_width is not None:
        preset = Window(float(row.window_center), float(row.window_width))
    policy: DatePolicy = "remove" if row.date_policy == "remove" else "shift"
    return ProjectSettings(policy, preset)


async def save_project_settings(platform: Platform, project: str, settings: ProjectSettings) -> ProjectSettings:
    values = {
        "date_policy": settings.date_policy,
        "window_center": settings.preset.center if settings.preset else None,
        "window_width": settings.preset.width if settings.preset else None,
        "updated_at": utcnow(),
    }
    async with platform.db.begin() as conn:
        created = await insert_ignore(conn, tables.project_settings, {"project": project, **values}, ["project"])
        if not created:
            await conn.execute(
                tables.project_settings.update().where(tables.project_settings.c.project == project).values(**values)
            )
    return settings
