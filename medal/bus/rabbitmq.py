"""The bus on RabbitMQ through pika.

Durable quorum queues with an explicit delivery limit and a dead-letter queue each, persistent
messages, publisher confirms with ``mandatory``, manual acks and prefetch. pika connections are
not thread-safe: publishing uses one connection per thread, and a consumer keeps its connection
on the thread that called :meth:`RabbitBus.consume` while handlers run on an asyncio loop in
another thread; their acks come back through ``add_callback_threadsafe`` so heartbeats keep
flowing however long a handler runs (docs/adr/0001-pika-threading.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from medal.bus.base import (
    Bus,
    BusError,
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

log = logging.getLogger("medal.bus.rabbitmq")

_CONNECTION_ERRORS = (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError, OSError)


class RabbitBus(Bus):
    """``namespace`` prefixes every exchange and queue (isolates tests and tenants on one broker)."""

    def __init__(
        self,
        url: str,
        *,
        delivery_limit: int = 5,
        heartbeat_seconds: int = 30,
        grace_seconds: float = 30.0,
        namespace: str = "",
    ) -> None:
        self.parameters = pika.URLParameters(url)
        self.parameters.heartbeat = heartbeat_seconds
        self.parameters.blocked_connection_timeout = 30
        self.parameters.connection_attempts = 1
        self.parameters.socket_timeout = 5
        self.delivery_limit = delivery_limit
        self.grace_seconds = grace_seconds
        self.namespace = namespace
        self._local = threading.local()

    # -- names and topology -------------------------------------------------------------------
    def name(self, base: str) -> str:
        return f"{self.namespace}.{base}" if self.namespace else base

    def declare(self, channel: BlockingChannel) -> None:
        """Declare the whole topology of proto.topology (idempotent)."""
        exchange = self.name(topology.EXCHANGE)
        dlx = self.name(topology.DEAD_LETTER_EXCHANGE)
        channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
        channel.exchange_declare(exchange=dlx, exchange_type="direct", durable=True)
        for base, message_types in topology.QUEUES.items():
            queue = self.name(base)
            dead = self.name(topology.dead_letter_queue(base))
            channel.queue_declare(queue=dead, durable=True, arguments={"x-queue-type": "quorum"})
            channel.queue_bind(queue=dead, exchange=dlx, routing_key=queue)
            channel.queue_declare(
                queue=queue,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    # Safety net for consumers that crash mid-message; ordinary failures are
                    # dead-lettered by the consumer itself with a reason after delivery_limit tries.
                    "x-delivery-limit": self.delivery_limit + 2,
                    "x-dead-letter-exchange": dlx,
                    "x-dead-letter-routing-key": queue,
                },
            )
            for message_type in message_types:
                channel.queue_bind(queue=queue, exchange=exchange, routing_key=message_type)

    def _connect(self) -> BlockingConnection:
        try:
            return BlockingConnection(self.parameters)
        except _CONNECTION_ERRORS as exc:
            raise BusError(
                f"cannot connect to RabbitMQ at {self.parameters.host}:{self.parameters.port}: {type(exc).__name__}"
            ) from exc

    # -- publishing ---------------------------------------------------------------------------
    def _publisher(self) -> BlockingChannel:
        channel: BlockingChannel | None = getattr(self._local, "channel", None)
        if channel is not None and channel.is_open:
            return channel
        connection = self._connect()
        channel = connection.channel()
        self.declare(channel)
        channel.confirm_delivery()
        self._local.connection = connection
        self._local.channel = channel
        return channel

    def _drop_publisher(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.channel = None
        self._local.connection = None
        if connection is not None and connection.is_open:
            with contextlib.suppress(*_CONNECTION_ERRORS):
                connection.close()

    def publish(self, envelope: Envelope) -> None:
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type="application/json",
            message_id=str(envelope.id),
            correlation_id=str(envelope.correlation_id),
            type=envelope.type,
            app_id=envelope.source,
            timestamp=int(envelope.time.timestamp()),
        )
        body = encode(envelope)
        for attempt in (1, 2):
            try:
                self._publisher().basic_publish(
                    exchange=self.name(topology.EXCHANGE),
                    routing_key=envelope.type,
                    body=body,
                    properties=properties,
                    mandatory=True,
                )
                return
            except pika.exceptions.UnroutableError:
                raise UnroutableMessage(f"no queue receives {envelope.type}") from None
            except pika.exceptions.NackError:
                raise BusError(f"broker refused message {envelope.id}") from None
            except _CONNECTION_ERRORS as exc:
                self._drop_publisher()
                if attempt == 2:
                    raise BusError(f"publish of {envelope.id} failed: {type(exc).__name__}") from exc

    def publish_raw(self, queue: str, body: bytes) -> None:
        """Put raw bytes straight on a queue (tests use it to inject malformed messages)."""
        self._publisher().basic_publish(
            exchange="",
            routing_key=self.name(queue),
            body=body,
            properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
            mandatory=True,
        )

    # -- consuming ----------------------------------------------------------------------------
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
        if queue not in topology.QUEUES:
            raise ValueError(f"unknown queue {queue!r}")
        stats = ConsumerStats()
        backoff = 0.5
        while not stop.is_set():
            try:
                self._consume_connected(queue, handlers, loop, stop, prefetch, on_tick, stats)
                backoff = 0.5
            except (BusError, *_CONNECTION_ERRORS) as exc:
                log.warning("consumer of %s lost the broker (%s); reconnecting", queue, type(exc).__name__)
                stop.wait(backoff)
                backoff = min(backoff * 2, 15.0)
        return stats

    def _consume_connected(
        self,
        queue: str,
        handlers: Mapping[str, Handler],
        loop: asyncio.AbstractEventLoop,
        stop: threading.Event,
        prefetch: int,
        on_tick: Callable[[], None] | None,
        stats: ConsumerStats,
    ) -> None:
        connection = self._connect()
        try:
            channel = connection.channel()
            self.declare(channel)
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=prefetch)
            in_flight: set[int] = set()
            settle = functools.partial(self._settle, channel, queue, in_flight, stats)

            def on_message(ch: BlockingChannel, method: Any, properties: Any, body: bytes) -> None:
                tag = method.delivery_tag
                attempts = int((properties.headers or {}).get("x-delivery-count", 0)) + 1
                in_flight.add(tag)

                def done(outcome: Outcome) -> None:
                    try:
                        connection.add_callback_threadsafe(functools.partial(settle, tag, attempts, body, outcome))
                    except _CONNECTION_ERRORS:
                        log.warning("connection gone before settling a message; it will be redelivered")

                run_handler(body, handlers, loop, done)

            consumer_tag = channel.basic_consume(queue=self.name(queue), on_message_callback=on_message)
            while not stop.is_set():
                connection.process_data_events(time_limit=0.5)
                if on_tick:
                    on_tick()
            channel.basic_cancel(consumer_tag)
            deadline = time.monotonic() + self.grace_seconds
            while in_flight and time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.2)
            if in_flight:
                log.warning("%d message(s) still running at shutdown are returned to %s", len(in_flight), queue)
        finally:
            if connection.is_open:
                with contextlib.suppress(*_CONNECTION_ERRORS):
                    connection.close()

    def _settle(
        self,
        channel: BlockingChannel,
        queue: str,
        in_flight: set[int],
        stats: ConsumerStats,
        tag: int,
        attempts: int,
        body: bytes,
        outcome: Outcome,
    ) -> None:
        if outcome.disposition is Disposition.ACK:
            stats.acked += 1
            channel.basic_ack(tag)
            in_flight.discard(tag)
            return
        if outcome.disposition is Disposition.RETRY and attempts < self.delivery_limit:
            stats.retried += 1

            def requeue() -> None:
                if channel.is_open:
                    channel.basic_nack(tag, requeue=True)
                in_flight.discard(tag)

            channel.connection.call_later(retry_delay_seconds(attempts), requeue)
            return
        reason = outcome.reason
        if outcome.disposition is Disposition.RETRY:
            reason = f"delivery limit {self.delivery_limit} reached; last error {outcome.reason}"
        dead = Outcome(Disposition.DEAD_LETTER, reason, outcome.message_id)
        log_dead_letter(queue, dead)
        channel.basic_publish(
            exchange="",
            routing_key=self.name(topology.dead_letter_queue(queue)),
            body=body,
            properties=pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=outcome.message_id,
                headers={"x-medal-reason": reason[:500], "x-medal-queue": queue},
            ),
            mandatory=True,
        )
        stats.dead_lettered += 1
        channel.basic_ack(tag)
        in_flight.discard(tag)

    # -- operations ---------------------------------------------------------------------------
    def dead_letters(self, queue: str) -> list[DeadLetter]:
        connection = self._connect()
        letters: list[DeadLetter] = []
        try:
            channel = connection.channel()
            self.declare(channel)
            while True:
                method, properties, body = channel.basic_get(
                    queue=self.name(topology.dead_letter_queue(queue)), auto_ack=False
                )
                if method is None:
                    break
                headers = properties.headers or {}
                letters.append(
                    DeadLetter(
                        queue=queue,
                        message_id=properties.message_id,
                        message_type=properties.type,
                        reason=str(headers.get("x-medal-reason", headers.get("x-death", "dead-lettered by broker"))),
                        body=body,
                    )
                )
        finally:
            connection.close()  # unacked gets are returned to the dead-letter queue
        return letters

    def delete_topology(self) -> None:
        """Remove every queue and exchange of this namespace (tests)."""
        connection = self._connect()
        try:
            channel = connection.channel()
            for base in topology.QUEUES:
                channel.queue_delete(queue=self.name(base))
                channel.queue_delete(queue=self.name(topology.dead_letter_queue(base)))
            channel.exchange_delete(exchange=self.name(topology.EXCHANGE))
            channel.exchange_delete(exchange=self.name(topology.DEAD_LETTER_EXCHANGE))
        finally:
            connection.close()

    def check(self) -> None:
        connection = self._connect()
        try:
            channel = connection.channel()
            channel.exchange_declare(exchange=self.name(topology.EXCHANGE), exchange_type="topic", durable=True)
        except _CONNECTION_ERRORS as exc:
            raise BusError(f"RabbitMQ not usable: {type(exc).__name__}") from exc
        finally:
            if connection.is_open:
                connection.close()

    def close(self) -> None:
        self._drop_publisher()
