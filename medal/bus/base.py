"""The bus interface and the delivery rules both transports share.

Delivery is at least once. A handler is an async function of (envelope, payload); it must be
idempotent on ``envelope.id``. Outcomes:

- handler returns → ack;
- body malformed, type unknown or without a handler on that queue, or handler raises
  :class:`PermanentFailure` → dead-lettered at once (logged without the body);
- any other exception → redelivered with back-off, dead-lettered after ``delivery_limit`` tries.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from proto.envelope import Envelope, MalformedMessage, Message, decode

log = logging.getLogger("medal.bus")

Handler = Callable[[Envelope, Message], Coroutine[Any, Any, None]]


class PermanentFailure(Exception):
    """Raised by a handler for a message that can never succeed: dead-letter it, don't retry."""


class BusError(RuntimeError):
    """The broker could not be reached or refused a publish."""


class UnroutableMessage(BusError):
    """No queue receives this message type."""


class Disposition(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True)
class Outcome:
    disposition: Disposition
    reason: str = ""
    message_id: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A message that was given up on, as an operator sees it."""

    queue: str
    message_id: str | None
    message_type: str | None
    reason: str
    body: bytes


@dataclass
class ConsumerStats:
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0


def retry_delay_seconds(delivery_count: int) -> float:
    """Back-off before a failed message is handed back: 0.2 s, 0.4 s, … capped at 5 s."""
    return float(min(5.0, 0.2 * 2 ** max(0, delivery_count - 1)))


def parse(body: bytes, handlers: Mapping[str, Handler]) -> tuple[Envelope, Message, Handler] | Outcome:
    """Decode a body and find its handler, or say why it must be dead-lettered."""
    try:
        envelope, payload = decode(body)
    except MalformedMessage as exc:
        return Outcome(Disposition.DEAD_LETTER, f"malformed: {exc}")
    handler = handlers.get(envelope.type)
    if handler is None:
        return Outcome(Disposition.DEAD_LETTER, f"no handler for {envelope.type}", str(envelope.id))
    return envelope, payload, handler


def run_handler(
    body: bytes,
    handlers: Mapping[str, Handler],
    loop: asyncio.AbstractEventLoop,
    done: Callable[[Outcome], None],
) -> None:
    """Start handling one delivery on ``loop``; ``done`` is called (from the loop's thread) with the outcome."""
    parsed = parse(body, handlers)
    if isinstance(parsed, Outcome):
        done(parsed)
        return
    envelope, payload, handler = parsed
    future = asyncio.run_coroutine_threadsafe(handler(envelope, payload), loop)

    def finished(fut: object) -> None:
        exc = future.exception() if not future.cancelled() else asyncio.CancelledError()
        message_id = str(envelope.id)
        if exc is None:
            done(Outcome(Disposition.ACK, message_id=message_id))
        elif isinstance(exc, PermanentFailure):
            done(Outcome(Disposition.DEAD_LETTER, f"permanent failure: {exc}", message_id))
        else:
            log.warning("handler for %s %s failed: %s", envelope.type, message_id, type(exc).__name__, exc_info=exc)
            done(Outcome(Disposition.RETRY, f"{type(exc).__name__}", message_id))

    future.add_done_callback(finished)


def log_dead_letter(queue: str, outcome: Outcome) -> None:
    log.error("dead-lettered a message from %s (id %s): %s", queue, outcome.message_id or "?", outcome.reason)


class Bus(ABC):
    """Publish and consume envelopes. ``publish`` is thread-safe and returns once the broker has the message."""

    @abstractmethod
    def publish(self, envelope: Envelope) -> None:
        """Raise :class:`UnroutableMessage` if no queue receives the type, :class:`BusError` if not confirmed."""

    @abstractmethod
    def consume(
        self,
        queue: str,
        handlers: Mapping[str, Handler],
        loop: asyncio.AbstractEventLoop,
        stop: threading.Event,
        *,
        prefetch: int = 1,
        on_tick: Callable[[], None] | None = None,
    ) -> ConsumerStats:
        """Block, dispatching deliveries of ``queue`` to ``handlers`` on ``loop``, until ``stop`` is set.

        On stop, no new delivery is started; in-flight ones are finished (or, past the grace
        period, returned to the queue). ``on_tick`` is called about once a second (liveness).
        """

    @abstractmethod
    def dead_letters(self, queue: str) -> list[DeadLetter]:
        """The dead-lettered messages of a queue (left in place)."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`BusError` when the broker is unreachable (readiness)."""

    @abstractmethod
    def close(self) -> None: ...
