"""An in-process bus with RabbitMQ's semantics, for embedded mode and tests.

Same topology (proto.topology), same rules: at-least-once delivery, explicit acks, retries on the
same :class:`RetrySchedule` (a waiting message holds no prefetch slot), dead-letter queues,
prefetch. Messages live in memory: in embedded mode the outbox table is the durable record (see
docs/adr/0002-queue-topology.md), and the dead letters live in the running `medal up` process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from medal.bus.base import (
    Bus,
    ConsumerStats,
    DeadLetter,
    Disposition,
    Handler,
    Outcome,
    RetrySchedule,
    UnknownDeadLetter,
    UnroutableMessage,
    check_queue,
    give_up_reason,
    log_dead_letter,
    run_handler,
)
from proto import topology
from proto.envelope import Envelope, encode


@dataclass
class _Delivery:
    body: bytes
    message_id: str
    message_type: str
    delivery_count: int = 0
    not_before: float = 0.0


class InProcessBus(Bus):
    def __init__(self, *, retry: RetrySchedule | None = None, grace_seconds: float = 30.0) -> None:
        self.retry = retry or RetrySchedule()
        self.grace_seconds = grace_seconds
        self._lock = threading.Condition()
        self._queues: dict[str, deque[_Delivery]] = {queue: deque() for queue in topology.QUEUES}
        self._dead: dict[str, list[DeadLetter]] = {queue: [] for queue in topology.QUEUES}

    def publish(self, envelope: Envelope) -> None:
        targets = topology.queues_for(envelope.type)
        if not targets:
            raise UnroutableMessage(f"no queue receives {envelope.type}")
        body = encode(envelope)
        self.publish_raw(targets, body, str(envelope.id), envelope.type)

    def publish_raw(self, queues: list[str], body: bytes, message_id: str = "?", message_type: str = "?") -> None:
        """Put raw bytes on queues (tests use it to inject malformed messages)."""
        with self._lock:
            for queue in queues:
                self._queues[queue].append(_Delivery(body, message_id, message_type))
            self._lock.notify_all()

    def depth(self, queue: str) -> int:
        with self._lock:
            return len(self._queues[queue])

    def _next(self, queue: str) -> _Delivery | None:
        now = time.monotonic()
        pending = self._queues[queue]
        for index, delivery in enumerate(pending):
            if delivery.not_before <= now:
                del pending[index]
                delivery.delivery_count += 1
                return delivery
        return None

    def _settle(self, queue: str, delivery: _Delivery, outcome: Outcome, stats: ConsumerStats) -> None:
        with self._lock:
            tries = delivery.delivery_count
            if outcome.disposition is Disposition.ACK:
                stats.acked += 1
            elif outcome.disposition is Disposition.RETRY and self.retry.should_retry(tries):
                stats.retried += 1
                delivery.not_before = time.monotonic() + self.retry.delay(tries)
                self._queues[queue].append(delivery)
            else:
                reason = give_up_reason(outcome, self.retry)
                stats.dead_lettered += 1
                log_dead_letter(queue, Outcome(Disposition.DEAD_LETTER, reason, outcome.message_id))
                self._dead[queue].append(
                    DeadLetter(
                        queue,
                        outcome.message_id,
                        delivery.message_type,
                        reason,
                        delivery.body,
                        attempts=tries,
                        dead_lettered_at=datetime.now(UTC),
                    )
                )
            self._lock.notify_all()

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
        check_queue(queue, self._queues)
        stats = ConsumerStats()
        in_flight: dict[int, _Delivery] = {}
        last_tick = 0.0
        while not stop.is_set():
            if on_tick and time.monotonic() - last_tick >= 1.0:
                on_tick()
                last_tick = time.monotonic()
            with self._lock:
                delivery = self._next(queue) if len(in_flight) < prefetch else None
                if delivery is None:
                    self._lock.wait(timeout=0.1)
                    continue
                in_flight[id(delivery)] = delivery
            self._dispatch(queue, delivery, handlers, loop, in_flight, stats)
        self._drain(queue, in_flight)
        return stats

    def _dispatch(
        self,
        queue: str,
        delivery: _Delivery,
        handlers: Mapping[str, Handler],
        loop: asyncio.AbstractEventLoop,
        in_flight: dict[int, _Delivery],
        stats: ConsumerStats,
    ) -> None:
        def done(outcome: Outcome) -> None:
            with self._lock:
                if in_flight.pop(id(delivery), None) is None:
                    return  # already handed back at shutdown
            self._settle(queue, delivery, outcome, stats)

        run_handler(delivery.body, handlers, loop, done, tries=delivery.delivery_count)

    def _drain(self, queue: str, in_flight: dict[int, _Delivery]) -> None:
        """Wait for in-flight work, then hand back what did not finish (as a closed channel would)."""
        deadline = time.monotonic() + self.grace_seconds
        with self._lock:
            while in_flight and time.monotonic() < deadline:
                self._lock.wait(timeout=0.1)
            for delivery in in_flight.values():
                self._queues[queue].appendleft(delivery)
            in_flight.clear()
            self._lock.notify_all()

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        check_queue(queue, self._dead)
        with self._lock:
            return list(self._dead[queue])

    def replay(self, queue: str, message_ids: Collection[str] | None = None) -> list[DeadLetter]:
        check_queue(queue, self._dead)
        with self._lock:
            letters = self._dead[queue]
            if message_ids is not None:
                unknown = set(message_ids) - {letter.message_id for letter in letters}
                if unknown:
                    raise UnknownDeadLetter(f"not dead-lettered in {queue}: {', '.join(sorted(unknown))}")
            chosen = [letter for letter in letters if message_ids is None or letter.message_id in message_ids]
            for letter in chosen:
                letters.remove(letter)
                self._queues[queue].append(_Delivery(letter.body, letter.message_id or "?", letter.message_type or "?"))
            self._lock.notify_all()
        return chosen

    def check(self) -> None:
        return None

    def close(self) -> None:
        return None
