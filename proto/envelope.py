"""The envelope every message on the bus travels in.

The envelope ``id`` doubles as the idempotency key: a consumer that has processed an id once
must not apply it again (delivery is at least once). Messages never carry pixels or patient
data: only object keys, content hashes and de-identified ids (claim-check pattern).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Message(BaseModel):
    """Base of every command and event payload.

    Subclasses set ``TYPE`` to ``"<name>.v<version>"``; commands are named as imperatives
    (``TrainMember``), events in the past tense (``ImageIngested``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[str]
    KIND: ClassVar[str]  # "command" or "event"


class Envelope(BaseModel):
    """Metadata around one payload, as it is serialised on the bus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID = Field(description="Unique per message; the consumers' idempotency key.")
    type: str = Field(pattern=r"^[a-z][a-z0-9_.-]*\.v[0-9]+$", description="Payload type with version.")
    source: str = Field(min_length=1, max_length=64, description="Service that produced the message.")
    time: datetime = Field(description="When the message was created (UTC).")
    correlation_id: uuid.UUID = Field(description="Ties together every message of one user action.")
    payload: dict[str, Any]


class MalformedMessage(ValueError):
    """A body that is not a valid envelope of a known message type. Never retried."""


_REGISTRY: dict[str, type[Message]] = {}


def register(message_type: type[Message]) -> type[Message]:
    """Class decorator: make a payload model known to :func:`decode`."""
    if message_type.TYPE in _REGISTRY:
        raise ValueError(f"message type {message_type.TYPE} registered twice")
    _REGISTRY[message_type.TYPE] = message_type
    return message_type


def registered_types() -> dict[str, type[Message]]:
    return dict(_REGISTRY)


def envelope_for(
    payload: Message,
    *,
    source: str,
    correlation_id: uuid.UUID | None = None,
    message_id: uuid.UUID | None = None,
) -> Envelope:
    """Wrap a payload. ``message_id`` may be derived from a business key to make re-sends idempotent."""
    new_id = message_id or uuid.uuid4()
    return Envelope(
        id=new_id,
        type=payload.TYPE,
        source=source,
        time=datetime.now(UTC),
        correlation_id=correlation_id or new_id,
        payload=payload.model_dump(mode="json"),
    )


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode("utf-8")


def decode(body: bytes) -> tuple[Envelope, Message]:
    """Parse and validate a body. Raises :class:`MalformedMessage` whose text never quotes the body."""
    try:
        raw = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage(f"body is not UTF-8 JSON ({type(exc).__name__})") from None
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        raise MalformedMessage(f"not a valid envelope: {_fields(exc)}") from None
    message_type = _REGISTRY.get(envelope.type)
    if message_type is None:
        raise MalformedMessage(f"unknown message type {envelope.type!r}")
    try:
        payload = message_type.model_validate(envelope.payload)
    except ValidationError as exc:
        raise MalformedMessage(f"invalid {envelope.type} payload: {_fields(exc)}") from None
    return envelope, payload


def _fields(exc: ValidationError) -> str:
    """Names the failing fields without echoing their values (which could hold PHI)."""
    parts = [".".join(str(p) for p in err["loc"]) + f" ({err['type']})" for err in exc.errors()]
    return ", ".join(parts[:5])
