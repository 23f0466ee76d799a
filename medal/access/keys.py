"""Project API keys: ``medal_<id>_<secret>``, shown once, stored only as a SHA-256 hash, revocable.

The id (12 characters) finds the row; the secret (32 random bytes) makes the key unguessable, so a fast
hash is enough (a slow password hash protects low-entropy secrets, which these are not).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access.roles import Role
from medal.db.schema.access import api_keys
from medal.db.schema.base import utcnow
from medal.domain_errors import Invalid, NotFound
from proto.types import PROJECT_PATTERN

KEY_PREFIX = "medal_"
KEY_PATTERN = re.compile(r"^medal_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
#: ``last_used_at`` is written at most this often per key (a read request should not write every time).
LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyNotFound(NotFound):
    code = "key-not-found"


class InvalidKeyRequest(Invalid):
    code = "invalid-key-request"


@dataclass(frozen=True)
class ApiKey:
    """One key's record (never its secret)."""

    id: str
    project: str
    role: Role
    label: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "role": self.role.label,
            "label": self.label,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked": self.revoked,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_by": self.revoked_by,
        }


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(credential: str) -> str | None:
    """The id in a well-formed ``medal_<id>_<secret>``; None for anything else."""
    match = KEY_PATTERN.match(credential)
    return match.group(1) if match else None


def new_key() -> tuple[str, str]:
    """A fresh (id, key)."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def _record(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        project=row.project,
        role=Role.parse(row.role),
        label=row.label,
        created_by=row.created_by,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


async def create_key(
    conn: AsyncConnection, *, project: str, role: Role | str, label: str, created_by: str
) -> tuple[ApiKey, str]:
    """A new key of ``project`` with ``role``: its record and the key itself (shown once, never stored)."""
    if not re.match(PROJECT_PATTERN, project):
        raise InvalidKeyRequest(f"{project[:70]!r} is not a project name (lower-case letters, digits, hyphens)")
    if isinstance(role, str):
        try:
            role = Role.parse(role)
        except ValueError as exc:
            raise InvalidKeyRequest(str(exc)) from None
    label = label.strip()
    if len(label) > 100 or any(ord(c) < 32 for c in label):
        raise InvalidKeyRequest("a key's label is at most 100 printable characters")
    key_id, key = new_key()
    now = utcnow()
    await conn.execute(
        api_keys.insert().values(
            id=key_id,
            project=project,
            role=role.label,
            label=label,
            secret_sha256=hash_key(key),
            created_by=created_by,
            created_at=now,
        )
    )
    return ApiKey(key_id, project, role, label, created_by, now, None, None, None), key


async def list_keys(conn: AsyncConnection, *, projects: frozenset[str] | None = None) -> list[ApiKey]:
    """Every key (``projects``: only those of these projects), newest first."""
    query = select(api_keys).order_by(api_keys.c.created_at.desc(), api_keys.c.id)
    if projects is not None:
        query = query.where(api_keys.c.project.in_(sorted(projects)))
    return [_record(row) for row in (await conn.execute(query)).all()]


async def get_key(conn: AsyncConnection, key_id: str) -> ApiKey:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    if row is None:
        raise KeyNotFound(f"no API key with id {key_id[:16]}")
    return _record(row)


async def revoke_key(conn: AsyncConnection, key_id: str, *, revoked_by: str) -> ApiKey:
    """Revoke a key (revoking a revoked key changes nothing); callers using it get 401 at once."""
    key = await get_key(conn, key_id)
    if key.revoked:
        return key
    now = utcnow()
    await conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=revoked_by)
    )
    return await get_key(conn, key_id)


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of presenting a ``medal_`` key: the key, or why it is refused."""

    key: ApiKey | None
    reason: str | None


async def check_key(conn: AsyncConnection, credential: str) -> KeyCheck:
    """Look a presented key up by id and compare hashes in constant time; notes when it was last used."""
    key_id = key_id_of(credential)
    if key_id is None:
        return KeyCheck(None, "malformed-key")
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    if row is None or not hmac.compare_digest(row.secret_sha256, hash_key(credential)):
        return KeyCheck(None, "invalid-key")
    key = _record(row)
    if key.revoked:
        return KeyCheck(None, "revoked-key")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        await conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=now))
    return KeyCheck(key, None)
