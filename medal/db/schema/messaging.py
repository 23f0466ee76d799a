"""Outbox and inbox: publish-after-commit and idempotent consumers, used by every service."""

from sqlalchemy import Column, Index, Integer, LargeBinary, String, Table, Text

from medal.db.schema.base import UUID_STR, UTCDateTime, metadata

outbox = Table(
    "messaging_outbox",
    metadata,
    Column("id", UUID_STR, primary_key=True, comment="Envelope id"),
    Column("source", String(32), nullable=False),
    Column("message_type", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False, comment="Encoded envelope"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Index(None, "sent_at", "created_at"),
)

inbox = Table(
    "messaging_inbox",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("message_id", UUID_STR, primary_key=True),
    Column("processed_at", UTCDateTime, nullable=False),
)
