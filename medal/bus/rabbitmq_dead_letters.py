"""Dead letters on RabbitMQ: how the consumer records them, how an operator lists and replays them.

A dead letter is the original body with the original properties (message id, type, correlation id,
source) and these headers: ``x-medal-reason``, ``x-medal-queue``, ``x-medal-attempts`` (tries made)
and ``x-medal-dead-lettered-at`` (ISO 8601, UTC). A message the broker itself dead-lettered (its
delivery limit, see :mod:`medal.bus.rabbitmq_topology`) has the broker's ``x-death`` header instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from medal.bus.base import DeadLetter
from medal.bus.rabbitmq_topology import BROKER_DELIVERY_LIMIT

ATTEMPTS = "x-medal-attempts"
REASON = "x-medal-reason"


def copy_properties(
    properties: Any, headers: Mapping[str, Any], *, message_id: str | None = None, expiration: str | None = None
) -> pika.BasicProperties:
    """The delivery's own properties with new headers: what a retried, dead-lettered or replayed copy carries."""
    return pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        content_type=properties.content_type,
        message_id=properties.message_id or message_id,
        correlation_id=properties.correlation_id,
        type=properties.type,
        app_id=properties.app_id,
        timestamp=properties.timestamp,
        headers=dict(headers),
        expiration=expiration,
    )


def tries_so_far(headers: Mapping[str, Any] | None) -> int:
    """Tries before this delivery: failed ones recorded by consumers plus hand-outs nobody decided."""
    headers = headers or {}
    return int(headers.get(ATTEMPTS, 0)) + int(headers.get("x-delivery-count", 0))


def dead_letter_headers(queue: str, reason: str, tries: int) -> dict[str, Any]:
    return {
        REASON: reason[:500],
        "x-medal-queue": queue,
        ATTEMPTS: tries,
        "x-medal-dead-lettered-at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def letter_from(queue: str, properties: Any, body: bytes) -> DeadLetter:
    headers = properties.headers or {}
    if REASON in headers:
        reason = str(headers[REASON])
        attempts = int(headers.get(ATTEMPTS, 1))
        when = _parse_time(headers.get("x-medal-dead-lettered-at"))
    else:  # dead-lettered by the broker
        deaths = headers.get("x-death") or [{}]
        death = deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
        cause = str(death.get("reason", "unknown"))
        if cause == "delivery_limit":
            reason = (
                f"broker delivery limit {BROKER_DELIVERY_LIMIT} reached: handed out that often without a "
                "consumer's decision (consumers crashed or were stopped while handling it)"
            )
        else:
            reason = f"dead-lettered by the broker ({cause})"
        attempts = int(headers.get(ATTEMPTS, 0)) + BROKER_DELIVERY_LIMIT
        raw_time = death.get("time")
        when = raw_time if isinstance(raw_time, datetime) else None
    return DeadLetter(
        queue=queue,
        message_id=properties.message_id,
        message_type=properties.type,
        reason=reason,
        body=body,
        attempts=attempts,
        dead_lettered_at=when,
    )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, (str, bytes)):
        return None
    try:
        return datetime.fromisoformat(value.decode() if isinstance(value, bytes) else value)
    except ValueError:
        return None


def fetch_all(channel: BlockingChannel, dlq: str, queue: str) -> list[tuple[int, Any, DeadLetter]]:
    """Every message of ``dlq`` taken without ack: (delivery tag, properties, letter), oldest first.

    Closing the channel without acking returns them all to the dead-letter queue.
    """
    fetched: list[tuple[int, Any, DeadLetter]] = []
    while True:
        method, properties, body = channel.basic_get(queue=dlq, auto_ack=False)
        if method is None:
            return fetched
        fetched.append((method.delivery_tag, properties, letter_from(queue, properties, body)))
