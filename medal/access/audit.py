"""The audit trail: who viewed, labelled, corrected, approved, skipped, exported, released, promoted what.

Append-only (the migration's triggers refuse UPDATE and DELETE). :func:`record` writes inside the
caller's transaction (``uow.conn`` of a unit of work), so a row exists exactly when the change does.
``details`` hold ids, versions and counts only, never PHI: e.g. ``{"model_version": 3}`` for the model
suggestion a mask started from.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access.caller import Caller
from medal.db.schema.access import audit
from medal.db.schema.base import utcnow

if TYPE_CHECKING:
    from medal.platform import Platform

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
#: Detail values are short scalars (ids, versions, counts, codes); anything else is refused.
_SCALAR = (str, int, float, bool, type(None))
MAX_PAGE = 1000


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    actor_kind: str
    actor_name: str
    action: str
    project: str | None
    subject_type: str
    subject_id: str
    details: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "actor_kind": self.actor_kind,
            "actor_name": self.actor_name,
            "action": self.action,
            "project": self.project,
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "details": dict(self.details),
        }


def _checked_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for key, value in (details or {}).items():
        if not _NAME.match(key):
            raise ValueError(f"audit detail names are short lower-case words, not {key[:40]!r}")
        if isinstance(value, list | tuple):
            if len(value) > 100 or not all(isinstance(v, _SCALAR) for v in value):
                raise ValueError(f"audit detail {key} is a list of at most 100 scalars")
            checked[key] = list(value)
        elif isinstance(value, _SCALAR):
            if isinstance(value, str) and len(value) > 255:
                raise ValueError(f"audit detail {key} is at most 255 characters")
            checked[key] = value
        else:
            raise ValueError(f"audit detail {key} must be a scalar or a list of scalars")
    return checked


async def record(
    conn: AsyncConnection,
    caller: Caller,
    action: str,
    project: str | None,
    subject_type: str,
    subject_id: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one row, in the transaction of ``conn`` (commit or roll back with the change itself).

    ``action`` is a past-tense fact or the route's :class:`~medal.access.roles.Action` (``viewed``,
    ``labelled``, ``corrected``, ``approved``, ``skipped``, ``exported``, ``released``, ``promoted``,
    ``rolled-back``, ``key-created`` …), ``subject_type`` what it concerns (``image``, ``mask``, ``model`` …).
    """
    if not _NAME.match(action) or not _NAME.match(subject_type):
        raise ValueError("audit action and subject type are short lower-case words")
    checked = _checked_details(details)
    await conn.execute(
        audit.insert().values(
            at=utcnow(),
            actor=caller.id[:255],
            actor_kind=caller.kind,
            actor_name=caller.display_name[:200],
            action=action,
            project=project,
            subject_type=subject_type,
            subject_id=str(subject_id)[:255],
            details=checked,
        )
    )


#: (caller, subject) -> the hour a "viewed" row was last written for it by this process.
_views: dict[tuple[str, str], datetime] = {}
_MAX_VIEWS_REMEMBERED = 20_000


async def record_view(platform: Platform, caller: Caller, project: str, subject_type: str, subject_id: str) -> bool:
    """A ``viewed`` row for ``subject_id``, at most one per (caller, subject, hour); True when one was written.

    Image fetches come by the hundred while a person scrolls: the trail keeps that the caller saw the
    image in that hour, not every request. Checked in this process first, then in the table (other processes).
    """
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    remembered = (caller.id[:255], str(subject_id)[:255])
    if _views.get(remembered) == hour:
        return False
    if len(_views) >= _MAX_VIEWS_REMEMBERED:
        _views.clear()
    async with platform.db.begin() as conn:
        seen = await conn.scalar(
            select(audit.c.seq)
            .where(
                audit.c.actor == remembered[0],
                audit.c.subject_id == remembered[1],
                audit.c.action == "viewed",
                audit.c.at >= hour,
                audit.c.at < hour + timedelta(hours=1),
            )
            .limit(1)
        )
        if seen is None:
            await record(conn, caller, "viewed", project, subject_type, subject_id)
    _views[remembered] = hour
    return seen is None


async def read(
    conn: AsyncConnection,
    *,
    project: str | None = None,
    after: int = 0,
    limit: int = 100,
    actions: Iterable[str] | None = None,
    actor: str | None = None,
    subject_id: str | None = None,
) -> list[AuditEntry]:
    """Rows in order, after sequence number ``after`` (a cursor: pass the last ``seq`` seen)."""
    query = select(audit).where(audit.c.seq > after).order_by(audit.c.seq).limit(max(1, min(limit, MAX_PAGE)))
    if project is not None:
        query = query.where(audit.c.project == project)
    if actions is not None:
        query = query.where(audit.c.action.in_(list(actions)))
    if actor is not None:
        query = query.where(audit.c.actor == actor)
    if subject_id is not None:
        query = query.where(audit.c.subject_id == subject_id)
    rows = (await conn.execute(query)).all()
    return [
        AuditEntry(
            r.seq,
            r.at,
            r.actor,
            r.actor_kind,
            r.actor_name,
            r.action,
            r.project,
            r.subject_type,
            r.subject_id,
            r.details,
        )
        for r in rows
    ]


CSV_COLUMNS = ("seq", "at", "actor", "actor_kind", "actor_name", "action", "project", "subject_type", "subject_id")


def as_csv(entries: Iterable[AuditEntry], *, header: bool = True) -> str:
    """The rows as CSV (details as one JSON column), for export."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow([*CSV_COLUMNS, "details"])
    for entry in entries:
        row = entry.as_json()
        writer.writerow([row[c] if row[c] is not None else "" for c in CSV_COLUMNS] + [json.dumps(row["details"])])
    return out.getvalue()
