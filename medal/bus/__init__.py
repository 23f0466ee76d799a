"""Bus adapters: RabbitMQ (distributed) and in-process (embedded), one interface."""

from __future__ import annotations

from medal.bus.base import (
    Bus,
    BusError,
    ConsumerStats,
    DeadLetter,
    Handler,
    PermanentFailure,
    RetrySchedule,
    UnknownDeadLetter,
    UnroutableMessage,
)
from medal.settings import Settings


def build_bus(settings: Settings) -> Bus:
    if settings.broker_url:
        from medal.bus.rabbitmq import RabbitBus

        return RabbitBus(
            settings.broker_url,
            retry=RetrySchedule.from_settings(settings),
            heartbeat_seconds=settings.bus_heartbeat_seconds,
            namespace=settings.bus_namespace,
        )
    from medal.bus.inprocess import InProcessBus

    return InProcessBus(retry=RetrySchedule.from_settings(settings))


__all__ = [
    "Bus",
    "BusError",
    "ConsumerStats",
    "DeadLetter",
    "Handler",
    "PermanentFailure",
    "RetrySchedule",
    "UnknownDeadLetter",
    "UnroutableMessage",
    "build_bus",
]
