"""Bus adapters: RabbitMQ (distributed) and in-process (embedded), one interface."""

from __future__ import annotations

from medal.bus.base import (
    Bus,
    BusError,
    ConsumerStats,
    DeadLetter,
    Handler,
    PermanentFailure,
    UnroutableMessage,
)
from medal.settings import Settings


def build_bus(settings: Settings) -> Bus:
    if settings.broker_url:
        from medal.bus.rabbitmq import RabbitBus

        return RabbitBus(
            settings.broker_url,
            delivery_limit=settings.bus_delivery_limit,
            heartbeat_seconds=settings.bus_heartbeat_seconds,
            namespace=settings.bus_namespace,
        )
    from medal.bus.inprocess import InProcessBus

    return InProcessBus(delivery_limit=settings.bus_delivery_limit)


__all__ = [
    "Bus",
    "BusError",
    "ConsumerStats",
    "DeadLetter",
    "Handler",
    "PermanentFailure",
    "UnroutableMessage",
    "build_bus",
]
