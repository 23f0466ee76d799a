"""The RabbitMQ topology of proto.topology: exchanges, work queues, retry queues, dead-letter queues.

Per work queue ``<queue>`` (names prefixed with the namespace):

- ``<queue>``: quorum queue bound to the ``medal`` topic exchange by message type. Its
  ``x-delivery-limit`` (:data:`BROKER_DELIVERY_LIMIT`) only counts hand-outs no consumer decided
  (a consumer crashed or was stopped mid-message); past it the broker dead-letters the message
  through ``medal.dlx``. Ordinary failures never touch it: the consumer acks and re-publishes.
- ``<queue>.retry.<n>``, one per distinct delay of the :class:`RetrySchedule` (``n`` = 1 shortest):
  quorum queues nobody consumes. A failed message is re-published there with its try count in the
  ``x-medal-attempts`` header and its (jittered) delay as per-message ``expiration``; on expiry the
  broker dead-letters it (at-least-once) back to ``<queue>`` through the default exchange. While it
  waits it holds no consumer, no prefetch slot and no unacked delivery. Every message in one tier
  has about the same delay, so expiry at the head of the queue keeps them in order. The queues'
  arguments do not depend on the settings (a changed schedule never makes a re-declare fail):
  ``x-message-ttl`` is only a backstop of one hour, the longest delay the settings allow.
- ``<queue>.dlq``: quorum queue of dead letters, with the reason in ``x-medal-reason``.

Every process declares all of it, idempotently, when it connects.
"""

from __future__ import annotations

import contextlib

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from medal.bus.base import RetrySchedule
from proto import topology

#: Hand-outs of one message without a consumer's decision before the broker dead-letters it. Constant
#: (a queue argument cannot change once declared) and equal to the value deployed before retry queues.
BROKER_DELIVERY_LIMIT = 7
#: Backstop TTL of the retry queues: the longest back-off the settings allow.
RETRY_QUEUE_TTL_MS = 3_600_000


def retry_queue(queue: str, tier: int) -> str:
    return f"{queue}.retry.{tier}"


def expiration_ms(seconds: float) -> str:
    """A delay as the per-message ``expiration`` property (whole milliseconds, at least 1)."""
    return str(max(1, round(seconds * 1000)))


class RabbitTopology:
    """Names and declarations of one namespace's topology."""

    def __init__(self, namespace: str, schedule: RetrySchedule) -> None:
        self.namespace = namespace
        self.schedule = schedule

    def name(self, base: str) -> str:
        return f"{self.namespace}.{base}" if self.namespace else base

    def retry_queue_for(self, queue: str, failed_tries: int) -> str:
        """The (namespaced) retry queue where a message waits after ``failed_tries`` failed tries."""
        return self.name(retry_queue(queue, self.schedule.tier(failed_tries)))

    def declare(self, channel: BlockingChannel) -> None:
        """Declare the whole topology (idempotent)."""
        exchange = self.name(topology.EXCHANGE)
        dlx = self.name(topology.DEAD_LETTER_EXCHANGE)
        channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
        channel.exchange_declare(exchange=dlx, exchange_type="direct", durable=True)
        tiers = len(self.schedule.tiers())
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
                    "x-delivery-limit": BROKER_DELIVERY_LIMIT,
                    "x-dead-letter-exchange": dlx,
                    "x-dead-letter-routing-key": queue,
                },
            )
            for message_type in message_types:
                channel.queue_bind(queue=queue, exchange=exchange, routing_key=message_type)
            for tier in range(1, tiers + 1):
                channel.queue_declare(
                    queue=self.name(retry_queue(base, tier)),
                    durable=True,
                    arguments={
                        "x-queue-type": "quorum",
                        "x-message-ttl": RETRY_QUEUE_TTL_MS,
                        "x-dead-letter-exchange": "",  # the default exchange: routes by queue name
                        "x-dead-letter-routing-key": queue,
                        "x-dead-letter-strategy": "at-least-once",
                        "x-overflow": "reject-publish",  # required by at-least-once dead-lettering
                    },
                )

    def delete(self, connection: BlockingConnection) -> None:
        """Remove every exchange and queue of the namespace, retry queues of any schedule included."""
        channel = connection.channel()
        for base in topology.QUEUES:
            channel.queue_delete(queue=self.name(base))
            channel.queue_delete(queue=self.name(topology.dead_letter_queue(base)))
            tier = 1
            while True:  # tiers are numbered 1, 2, … without gaps, whatever schedule declared them
                name = self.name(retry_queue(base, tier))
                try:
                    channel.queue_declare(queue=name, passive=True)
                except pika.exceptions.ChannelClosedByBroker:
                    channel = connection.channel()
                    break
                channel.queue_delete(queue=name)
                tier += 1
        channel.exchange_delete(exchange=self.name(topology.EXCHANGE))
        channel.exchange_delete(exchange=self.name(topology.DEAD_LETTER_EXCHANGE))
        with contextlib.suppress(pika.exceptions.AMQPError):
            channel.close()

    def queue_exists(self, connection: BlockingConnection, name: str) -> bool:
        channel = connection.channel()
        try:
            channel.queue_declare(queue=name, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return False
        with contextlib.suppress(pika.exceptions.AMQPError):
            channel.close()
        return True
