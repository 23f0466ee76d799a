"""The bus interface and the delivery rules both transports share.

Delivery is at least once. A handler is an async function of (envelope, payload); it must be
idempotent on ``envelope.id``. Outcomes:

- handler returns → ack;
- body malformed, type unknown or without a handler on that queue, or handler raises
  :class:`PermanentFailure` → dead-lettered at once, with the reason (logged without the body);
- any other exception → retried on the :class:`RetrySchedule` (exponential back-off with jitter,
  up to minutes, without holding the consumer), dead-lettered after the schedule's last try.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from medal.domain_errors import DomainError
from proto.envelope import Envelope, MalformedMessage, Message, decode

if TYPE_CHECKING:
    from medal.settings import Settings

log = logging.getLogger("medal.bus")

Handler = Callable[[Envelope, Message], Coroutine[Any, Any, None]]


class PermanentFailure(Exception):
    """Raised by a handler for a message that can never succeed: dead-letter it, don't retry."""


class BusError(RuntimeError):
    """The broker could not be reached or refused a publish."""


class UnroutableMessage(BusError):
    """No queue receives this message type."""


class UnknownDeadLetter(LookupError):
    """A message id asked for is not in the dead-letter queue."""


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
    """A message that was given up on, as an operator sees it (``body`` is never printed or logged)."""

    queue: str
    message_id: str | None
    message_type: str | None
    reason: str
    body: bytes
    attempts: int = 1
    dead_lettered_at: datetime | None = None


@dataclass
class ConsumerStats:
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0


@dataclass(frozen=True)
class RetrySchedule:
    """How a delivery that failed for a transient reason is retried.

    After failed try ``n`` (1-based) the message waits ``min(maximum_seconds, initial_seconds * 2**(n-1))``,
    shortened at random by up to ``jitter`` of itself (so messages that failed together do not all
    come back together), then try ``n + 1`` starts; after try ``attempts`` fails it is dead-lettered.
    The defaults (14 tries: 1 s, 2 s, 4 s … 256 s, then 5 min four times) span about 28 minutes.
    """

    attempts: int = 14
    initial_seconds: float = 1.0
    maximum_seconds: float = 300.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry schedule needs at least one try")
        if not 0 < self.initial_seconds <= self.maximum_seconds:
            raise ValueError("retry delays must satisfy 0 < initial <= maximum")
        if not 0 <= self.jitter < 1:
            raise ValueError("retry jitter is a fraction in [0, 1)")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrySchedule:
        return cls(
            attempts=settings.bus_delivery_limit,
            initial_seconds=settings.bus_retry_initial_seconds,
            maximum_seconds=settings.bus_retry_max_seconds,
            jitter=settings.bus_retry_jitter,
        )

    def nominal_delay(self, failed_tries: int) -> float:
        """The back-off after ``failed_tries`` tries have failed, before jitter."""
        exponent = min(max(0, failed_tries - 1), 60)
        return float(min(self.maximum_seconds, self.initial_seconds * 2**exponent))

    def delay(self, failed_tries: int, rng: Callable[[], float] = random.random) -> float:
        return self.nominal_delay(failed_tries) * (1 - self.jitter * rng())

    def should_retry(self, tries: int) -> bool:
        return tries < self.attempts

    def tiers(self) -> tuple[float, ...]:
        """The distinct nominal delays of the schedule, shortest first (one retry queue each on RabbitMQ)."""
        return tuple(sorted({self.nominal_delay(n) for n in range(1, self.attempts)}))

    def tier(self, failed_tries: int) -> int:
        """1-based index in :meth:`tiers` of the delay after ``failed_tries``."""
        return self.tiers().index(self.nominal_delay(failed_tries)) + 1

    def total_seconds(self) -> float:
        """Nominal time from the first try to the last."""
        return sum(self.nominal_delay(n) for n in range(1, self.attempts))


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


def _failure_reason(exc: BaseException) -> str:
    """Why a try failed, without echoing arbitrary exception text (it could quote data)."""
    if isinstance(exc, DomainError):  # domain errors are written to be shown
        return f"{exc.code}: {exc.message}"[:300]
    return type(exc).__name__


def run_handler(
    body: bytes,
    handlers: Mapping[str, Handler],
    loop: asyncio.AbstractEventLoop,
    done: Callable[[Outcome], None],
    *,
    tries: int = 1,
) -> None:
    """Start handling one delivery (its ``tries``-th) on ``loop``; ``done`` is called with the outcome."""
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
            reason = _failure_reason(exc)
            # The traceback once, on the first failure; repeats (an outage) are one line each.
            log.warning(
                "handler for %s %s failed (try %d): %s",
                envelope.type,
                message_id,
                tries,
                reason,
                exc_info=exc if tries == 1 else None,
            )
            done(Outcome(Disposition.RETRY, reason, message_id))

    future.add_done_callback(finished)


def give_up_reason(outcome: Outcome, schedule: RetrySchedule) -> str:
    """The dead-letter reason of an outcome that will not be retried."""
    if outcome.disposition is Disposition.RETRY:
        return f"delivery limit {schedule.attempts} reached; last error {outcome.reason}"
    return outcome.reason


def log_dead_letter(queue: str, outcome: Outcome) -> None:
    log.error("dead-lettered a message from %s (id %s): %s", queue, outcome.message_id or "?", outcome.reason)


class Bus(ABC):
    """Publish and consume envelopes. ``publish`` is thread-safe and returns once the broker has the message."""

    retry: RetrySchedule

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
        A message waiting for its retry holds neither the consumer nor a prefetch slot.
        """

    @abstractmethod
    def dead_letters(self, queue: str) -> list[DeadLetter]:
        """The dead-lettered messages of a queue, oldest first (left in place)."""

    @abstractmethod
    def replay(self, queue: str, message_ids: Collection[str] | None = None) -> list[DeadLetter]:
        """Put dead letters back on ``queue`` (every one when ``message_ids`` is None), once each, with a
        fresh retry schedule. A letter leaves the dead-letter queue only after its republish is confirmed.

        Raises :class:`UnknownDeadLetter` (replaying nothing) if an id is not dead-lettered there.
        """

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`BusError` when the broker is unreachable (readiness)."""

    @abstractmethod
    def close(self) -> None: ...


def check_queue(queue: str, queues: Collection[str]) -> None:
    if queue not in queues:
        raise ValueError(f"unknown queue {queue!r}: one of {', '.join(sorted(queues))}")
