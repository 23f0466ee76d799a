"""Tables of access control (medal.access): project API keys, project members, the audit trail.

Shared by every service through medal.access only (no service imports this module). The audit table is
append-only: the migration installs triggers that refuse UPDATE, DELETE (and, on PostgreSQL, TRUNCATE).
"""

from sqlalchemy import JSON, Column, Index, Integer, String, Table

from medal.db.schema.base import SHA256_STR, UTCDateTime, metadata

api_keys = Table(
    "access_api_keys",
    metadata,
    Column("id", String(16), primary_key=True, comment="Key id: the part after medal_ in the key itself"),
    Column("project", String(63), nullable=False, index=True),
    Column("role", String(16), nullable=False, comment="annotator, reviewer or project-admin"),
    Column("label", String(100), nullable=False, server_default=""),
    Column("secret_sha256", SHA256_STR, nullable=False, comment="SHA-256 of the whole key; the key is never stored"),
    Column("created_by", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_by", String(255), nullable=True),
)

members = Table(
    "access_members",
    metadata,
    Column("project", String(63), primary_key=True),
    Column("subject", String(255), primary_key=True, comment="The provider's `sub` of the person or client"),
    Column("role", String(16), nullable=False),
    Column("name", String(200), nullable=False, server_default="", comment="Display name, for the members list"),
    Column("granted_by", String(255), nullable=False),
    Column("granted_at", UTCDateTime, nullable=False),
    Index(None, "subject"),
)

audit = Table(
    "access_audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(255), nullable=False, comment="Caller.id"),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_name", String(200), nullable=False, server_default=""),
    Column("action", String(32), nullable=False),
    Column("project", String(63), nullable=True, comment="None for platform-wide actions"),
    Column("subject_type", String(32), nullable=False, comment="image, task, mask, model, export, key, member …"),
    Column("subject_id", String(255), nullable=False),
    Column("details", JSON, nullable=False, comment="Ids and versions only, never PHI (e.g. model suggestion)"),
    Index(None, "project", "seq"),
    Index(None, "actor", "subject_id"),
)
