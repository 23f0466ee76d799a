"""An in-process bus with RabbitMQ's semantics, for embedded mode and tests.

Same topology (proto.topology), same rules: at-least-once delivery, explicit acks, redelivery with
a delivery count, dead-letter queues, prefetch. Messages live in memory: in embedded mode the
outbox table is the durable record (see docs/adr/0002-queue-topology.md).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from medal.bus.base import (
    Bus,
    ConsumerStats,
    DeadLetter,
    Disposition,
    Handler,
    Outcome,
    UnroutableMessage,
    log_dead_letter,
    retry_delay_seconds,
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
    def __init__(self, *, delivery_limit: int = 5, grace_seconds: float = 30.0) -> None:
        self.delivery_limit = delivery_limit
        self.grace_seconds = grace_seconds
        self._lock = threading.Condition()
        self._queues: dict[str, deque[_Delivery]] = {queue: deque() for queue in topology.QUEUES}
        self._dead: dict[str, list[DeadLetter]] = {queue: [] for queue in topology.QUEUES}
        self.published = 0

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
            self.published += 1
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
            if outcome.disposition is Disposition.ACK:
                stats.acked += 1
            elif outcome.disposition is Disposition.RETRY and delivery.delivery_count < self.delivery_limit:
                stats.retried += 1
                delivery.not_before = time.monotonic() + retry_delay_seconds(delivery.delivery_count)
                self._queues[queue].append(delivery)
            else:
                reason = outcome.reason
                if outcome.disposition is Disposition.RETRY:
                    reason = f"delivery limit {self.delivery_limit} reached; last error {outcome.reason}"
                stats.dead_lettered += 1
                log_dead_letter(queue, Outcome(Disposition.DEAD_LETTER, reason, outcome.message_id))
                self._dead[queue].append(
                    DeadLetter(queue, outcome.message_id, delivery.message_type, reason, delivery.body)
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
        if queue not in self._queues:
            raise ValueError(f"unknown queue {queue!r}")
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

        run_handler(delivery.body, handlers, loop, done)

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
        with self._lock:
            return list(self._dead[queue])

    def check(self) -> None:
        return None

    def close(self) -> None:
        return None
