"""The bus on RabbitMQ through pika.

Durable quorum queues with retry queues and a dead-letter queue each (medal.bus.rabbitmq_topology),
persistent messages, publisher confirms with ``mandatory``, manual acks and prefetch. A failed
delivery is re-published to a retry queue (confirmed) and then acked, so its back-off holds nothing.
pika connections are not thread-safe: publishing uses one connection per thread, and a consumer
keeps its connection on the thread that called :meth:`RabbitBus.consume` while handlers run on an
asyncio loop in another thread; their acks come back through ``add_callback_threadsafe`` so heartbeats keep
flowing however long a handler runs (docs/adr/0001-pika-threading.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
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
    RetrySchedule,
    UnknownDeadLetter,
    UnroutableMessage,
    check_queue,
    give_up_reason,
    log_dead_letter,
    run_handler,
)
from medal.bus.rabbitmq_dead_letters import (
    ATTEMPTS,
    copy_properties,
    dead_letter_headers,
    fetch_all,
    tries_so_far,
)
from medal.bus.rabbitmq_topology import RabbitTopology, expiration_ms
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
        retry: RetrySchedule | None = None,
        heartbeat_seconds: int = 30,
        grace_seconds: float = 30.0,
        namespace: str = "",
    ) -> None:
        self.parameters = pika.URLParameters(url)
        self.parameters.heartbeat = heartbeat_seconds
        self.parameters.blocked_connection_timeout = 30
        self.parameters.connection_attempts = 1
        self.parameters.socket_timeout = 5
        self.retry = retry or RetrySchedule()
        self.grace_seconds = grace_seconds
        self.namespace = namespace
        self.topology = RabbitTopology(namespace, self.retry)
        self._local = threading.local()

    # -- names and topology -------------------------------------------------------------------
    def name(self, base: str) -> str:
        return self.topology.name(base)

    def declare(self, channel: BlockingChannel) -> None:
        """Declare the whole topology of proto.topology, retry queues included (idempotent)."""
        self.topology.declare(channel)

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
        check_queue(queue, topology.QUEUES)
        stats = ConsumerStats()
        backoff = 0.5
        while not stop.is_set():
            try:
                self._consume_connected(queue, handlers, loop, stop, prefetch, on_tick, stats)
                backoff = 0.5
            except (BusError, *_CONNECTION_ERRORS) as exc:
                log.warning("consumer of %s lost the broker (%s); reconnecting", queue, type(exc).__name__)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
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
                # A redelivery after a consumer crash counts (x-delivery-count) as well as failed tries.
                tries = tries_so_far(properties.headers) + 1
                in_flight.add(tag)

                def done(outcome: Outcome) -> None:
                    try:
                        connection.add_callback_threadsafe(
                            functools.partial(settle, tag, tries, properties, body, outcome)
                        )
                    except _CONNECTION_ERRORS:
                        log.warning("connection gone before settling a message; it will be redelivered")

                run_handler(body, handlers, loop, done, tries=tries)

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
        tries: int,
        properties: Any,
        body: bytes,
        outcome: Outcome,
    ) -> None:
        if outcome.disposition is Disposition.ACK:
            stats.acked += 1
        elif outcome.disposition is Disposition.RETRY and self.retry.should_retry(tries):
            if not self._publish_retry(channel, queue, tries, properties, body, outcome):
                channel.basic_nack(tag, requeue=True)  # counted by x-delivery-count: not forever
                in_flight.discard(tag)
                return
            stats.retried += 1
        else:
            reason = give_up_reason(outcome, self.retry)
            log_dead_letter(queue, Outcome(Disposition.DEAD_LETTER, reason, outcome.message_id))
            channel.basic_publish(
                exchange="",
                routing_key=self.name(topology.dead_letter_queue(queue)),
                body=body,
                properties=copy_properties(
                    properties, dead_letter_headers(queue, reason, tries), message_id=outcome.message_id
                ),
                mandatory=True,
            )
            stats.dead_lettered += 1
        channel.basic_ack(tag)
        in_flight.discard(tag)

    def _publish_retry(
        self, channel: BlockingChannel, queue: str, tries: int, properties: Any, body: bytes, outcome: Outcome
    ) -> bool:
        """Park a failed message in its retry queue (confirmed); False if the broker would not take it."""
        delay = self.retry.delay(tries)
        headers = {ATTEMPTS: tries, "x-medal-last-error": outcome.reason[:200]}
        try:
            channel.basic_publish(
                exchange="",
                routing_key=self.topology.retry_queue_for(queue, tries),
                body=body,
                properties=copy_properties(
                    properties, headers, message_id=outcome.message_id, expiration=expiration_ms(delay)
                ),
                mandatory=True,
            )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
            log.warning("retry queue of %s refused message %s; handing it back", queue, outcome.message_id or "?")
            return False
        log.info("message %s from %s: try %d failed, next in %.1f s", outcome.message_id or "?", queue, tries, delay)
        return True

    # -- operations ---------------------------------------------------------------------------
    def dead_letters(self, queue: str) -> list[DeadLetter]:
        check_queue(queue, topology.QUEUES)
        dlq = self.name(topology.dead_letter_queue(queue))
        connection = self._connect()
        try:
            if not self.topology.queue_exists(connection, dlq):
                return []  # nothing ever declared it, so nothing was dead-lettered
            return [letter for _tag, _properties, letter in fetch_all(connection.channel(), dlq, queue)]
        except _CONNECTION_ERRORS as exc:
            raise BusError(f"reading {dlq} failed: {type(exc).__name__}") from exc
        finally:
            _close(connection)  # unacked gets are returned to the dead-letter queue

    def replay(self, queue: str, message_ids: Collection[str] | None = None) -> list[DeadLetter]:
        check_queue(queue, topology.QUEUES)
        dlq = self.name(topology.dead_letter_queue(queue))
        connection = self._connect()
        try:
            if not self.topology.queue_exists(connection, dlq):
                fetched = []
            else:
                channel = connection.channel()
                channel.confirm_delivery()
                fetched = fetch_all(channel, dlq, queue)
            if message_ids is not None:
                unknown = set(message_ids) - {letter.message_id for _tag, _props, letter in fetched}
                if unknown:
                    raise UnknownDeadLetter(f"not dead-lettered in {queue}: {', '.join(sorted(unknown))}")
            replayed: list[DeadLetter] = []
            for tag, properties, letter in fetched:
                if message_ids is not None and letter.message_id not in message_ids:
                    continue
                headers = {"x-medal-replayed-at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                try:
                    channel.basic_publish(
                        exchange="",
                        routing_key=self.name(queue),
                        body=letter.body,
                        properties=copy_properties(properties, headers),
                        mandatory=True,
                    )
                except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                    raise BusError(f"broker refused to replay {letter.message_id} to {queue}") from exc
                channel.basic_ack(tag)  # only now: the republish is confirmed
                replayed.append(letter)
            return replayed
        except _CONNECTION_ERRORS as exc:
            raise BusError(f"replaying {dlq} failed: {type(exc).__name__}") from exc
        finally:
            _close(connection)

    def delete_topology(self) -> None:
        """Remove every queue and exchange of this namespace (tests)."""
        connection = self._connect()
        try:
            self.topology.delete(connection)
        finally:
            _close(connection)

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


def _close(connection: BlockingConnection) -> None:
    if connection.is_open:
        with contextlib.suppress(*_CONNECTION_ERRORS):
            connection.close()
