"""Project members: which person (the provider's subject) has which role in which project.

A person's role in a project is the higher of what the membership table grants and what the token's
roles claim says (so a hospital may manage roles in its provider, in medal, or both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access.roles import Role
from medal.db.engine import insert_ignore
from medal.db.schema.access import members
from medal.db.schema.base import utcnow
from medal.domain_errors import Invalid, NotFound
from proto.types import PROJECT_PATTERN


class MemberNotFound(NotFound):
    code = "member-not-found"


class InvalidMember(Invalid):
    code = "invalid-member"


@dataclass(frozen=True)
class Member:
    project: str
    subject: str
    role: Role
    name: str
    granted_by: str
    granted_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "subject": self.subject,
            "role": self.role.label,
            "name": self.name,
            "granted_by": self.granted_by,
            "granted_at": self.granted_at.isoformat(),
        }


def _member(row: Any) -> Member:
    return Member(row.project, row.subject, Role.parse(row.role), row.name, row.granted_by, row.granted_at)


async def grant(
    conn: AsyncConnection, *, project: str, subject: str, role: Role | str, granted_by: str, name: str = ""
) -> Member:
    """Give ``subject`` ``role`` in ``project`` (replacing the role it had there)."""
    if not re.match(PROJECT_PATTERN, project):
        raise InvalidMember(f"{project[:70]!r} is not a project name")
    subject = subject.strip()
    if not subject or len(subject) > 255 or any(ord(c) < 32 for c in subject):
        raise InvalidMember("a member's subject is 1 to 255 printable characters (the provider's `sub`)")
    if isinstance(role, str):
        try:
            role = Role.parse(role)
        except ValueError as exc:
            raise InvalidMember(str(exc)) from None
    values = {"role": role.label, "name": name.strip()[:200], "granted_by": granted_by, "granted_at": utcnow()}
    key = {"project": project, "subject": subject}
    if not await insert_ignore(conn, members, {**key, **values}, ["project", "subject"]):
        await conn.execute(
            members.update().where(members.c.project == project, members.c.subject == subject).values(**values)
        )
    return await get_member(conn, project, subject)


async def get_member(conn: AsyncConnection, project: str, subject: str) -> Member:
    row = (
        await conn.execute(select(members).where(members.c.project == project, members.c.subject == subject))
    ).first()
    if row is None:
        raise MemberNotFound(f"{subject[:80]} has no role in {project}")
    return _member(row)


async def revoke(conn: AsyncConnection, project: str, subject: str) -> Member:
    member = await get_member(conn, project, subject)
    await conn.execute(members.delete().where(members.c.project == project, members.c.subject == subject))
    return member


async def list_members(conn: AsyncConnection, project: str) -> list[Member]:
    rows = await conn.execute(select(members).where(members.c.project == project).order_by(members.c.subject))
    return [_member(row) for row in rows.all()]


async def roles_of(conn: AsyncConnection, subject: str) -> dict[str, Role]:
    """Every project ``subject`` is a member of, with its role there."""
    rows = await conn.execute(select(members.c.project, members.c.role).where(members.c.subject == subject))
    return {row.project: Role.parse(row.role) for row in rows.all()}
