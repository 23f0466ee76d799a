"""Per-project ingest settings: the date option of de-identification and the display window preset."""

from __future__ import annotations

from sqlalchemy import select

from medal.access import Caller, acting, audit
from medal.db.engine import insert_ignore
from medal.db.schema import ingest as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from services.ingest.errors import InvalidWindow
from services.ingest.schemas import IngestSettings


async def project_settings(platform: Platform, project: str) -> IngestSettings:
    async with platform.db.connect() as conn:
        row = (
            await conn.execute(select(tables.project_settings).where(tables.project_settings.c.project == project))
        ).first()
    if row is None:
        return IngestSettings()
    windowed = row.window_center is not None and row.window_width is not None
    return IngestSettings(
        date_policy="remove" if row.date_policy == "remove" else "shift",
        window_center=float(row.window_center) if windowed else None,
        window_width=float(row.window_width) if windowed else None,
        keep_original_uids=bool(row.keep_original_uids),
    )


async def save_project_settings(
    platform: Platform, project: str, settings: IngestSettings, caller: Caller | str
) -> IngestSettings:
    """Store the project's options (the route lets only project admins); a window needs both its center
    and its width. Recorded in the audit trail, with whether original UIDs are kept."""
    if (settings.window_center is None) != (settings.window_width is None):
        raise InvalidWindow("give both window_center and window_width, or neither")
    values = {
        "keep_original_uids": settings.keep_original_uids,
        "date_policy": settings.date_policy,
        "window_center": settings.window_center,
        "window_width": settings.window_width,
        "updated_at": utcnow(),
    }
    async with platform.db.begin() as conn:
        created = await insert_ignore(conn, tables.project_settings, {"project": project, **values}, ["project"])
        if not created:
            await conn.execute(
                tables.project_settings.update().where(tables.project_settings.c.project == project).values(**values)
            )
        details = {"date_policy": settings.date_policy, "keep_original_uids": settings.keep_original_uids}
        await audit.record(conn, acting(caller), "ingest-settings-changed", project, "project", project, details)
    return settings
