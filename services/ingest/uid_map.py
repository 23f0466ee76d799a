"""The opt-in original-UID mapping: which source UIDs a project's pseudonymous UIDs stand for.

Off by default (``keep_original_uids`` in the project's ingest settings). When on, every instance
ingested (or re-sent) records its study, series and SOP Instance UIDs against their pseudonyms in
``ingest_original_uids``, in the transaction that stores the instance. The mapping stays inside
ingest: it is never put on the bus, never copied to another service's tables, never logged (the
``original_uids`` of a de-identified instance are left out of its repr, and no message here quotes a
UID). :func:`resolve` is the one way out — for a SEG export that must reference the clinical PACS's
instances — and each call is recorded (who, why, how many; not which) in
``ingest_original_uid_reads``. docs/adr/0034-pacs-exchange-and-original-uids.md gives the trade-off.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access import Caller, audit
from medal.db.engine import insert_ignore
from medal.db.schema import ingest as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from services.ingest.deid import DeidentifiedInstance
from services.ingest.errors import OriginalUidsOff, OriginalUidsUnknown

LEVELS = ("study", "series", "instance")
MAX_RESOLVE = 10000


class OriginalInstance(BaseModel):
    """One de-identified instance and the source UIDs it was made from."""

    sop_uid: str = Field(description="The de-identified SOP Instance UID (as stored by ingest).")
    original_study_uid: str
    original_series_uid: str
    original_sop_uid: str


class ResolveRequest(BaseModel):
    sop_uids: list[str] = Field(min_length=1, max_length=MAX_RESOLVE, description="De-identified SOP Instance UIDs.")
    purpose: str = Field(default="seg-export", pattern=r"^[a-z0-9-]{1,40}$", description="Recorded with the access.")


class ResolveResponse(BaseModel):
    project: str
    instances: list[OriginalInstance]


async def remember(conn: AsyncConnection, project: str, deid: DeidentifiedInstance) -> None:
    """Record the instance's three UID pairs (idempotent: a re-send changes nothing)."""
    now = utcnow()
    pseudonyms = (deid.study_uid, deid.series_uid, deid.sop_uid)
    for level, uid, original in zip(LEVELS, pseudonyms, deid.original_uids, strict=True):
        if original:
            row = {"project": project, "uid": uid, "level": level, "original_uid": original, "created_at": now}
            await insert_ignore(conn, tables.original_uids, row, ["project", "uid"])


async def resolve(
    platform: Platform, project: str, sop_uids: Sequence[str], *, caller: Caller, purpose: str
) -> list[OriginalInstance]:
    """The original study/series/SOP UIDs of de-identified instances of ``project``, in the given order.

    For the SEG export to the clinical PACS; the route lets only the project's admins call it. Raises
    :class:`OriginalUidsOff` (project option), :class:`OriginalUidsUnknown` (some have no record).
    """
    caller_id = caller.id
    s, se, i, m = tables.studies, tables.series, tables.instances, tables.original_uids
    wanted = list(dict.fromkeys(sop_uids))
    async with platform.db.begin() as conn:
        keep = await conn.scalar(
            select(tables.project_settings.c.keep_original_uids).where(tables.project_settings.c.project == project)
        )
        if not keep:
            raise OriginalUidsOff("this project does not keep original UIDs (an admin can switch it on)")
        rows = (
            await conn.execute(
                select(i.c.sop_uid, se.c.series_uid, s.c.study_uid)
                .join(se, se.c.id == i.c.series_id)
                .join(s, s.c.id == se.c.study_id)
                .where(s.c.project == project, i.c.sop_uid.in_(wanted))
            )
        ).all()
        pseudonyms = {uid for row in rows for uid in row}
        originals = dict(
            (
                await conn.execute(
                    select(m.c.uid, m.c.original_uid).where(m.c.project == project, m.c.uid.in_(pseudonyms))
                )
            ).all()
        )
        found = [
            OriginalInstance(
                sop_uid=row.sop_uid,
                original_study_uid=originals[row.study_uid],
                original_series_uid=originals[row.series_uid],
                original_sop_uid=originals[row.sop_uid],
            )
            for row in rows
            if {row.sop_uid, row.series_uid, row.study_uid} <= originals.keys()
        ]
        if len(found) != len(wanted):
            missing = len(wanted) - len(found)
            raise OriginalUidsUnknown(
                f"{missing} of {len(wanted)} instances have no original UIDs on record in this project "
                "(ingested before the option was on: send them again to record them)"
            )
        await conn.execute(
            tables.original_uid_reads.insert().values(
                id=str(uuid.uuid4()),
                project=project,
                caller=caller_id[:64],
                purpose=purpose,
                instances=len(found),
                created_at=utcnow(),
            )
        )
        details = {"purpose": purpose, "instances": len(found)}
        await audit.record(conn, caller, "original-uids-read", project, "project", project, details)
    order = {uid: n for n, uid in enumerate(wanted)}
    return sorted(found, key=lambda item: order[item.sop_uid])
