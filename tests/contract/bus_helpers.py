"""What the bus contract tests share: a bus of each kind with a fast retry schedule, a consumer thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

from medal.bus import Bus, Handler, RetrySchedule
from medal.bus.inprocess import InProcessBus
from medal.bus.rabbitmq import RabbitBus
from proto import Envelope, envelope_for
from tests.factories import image_ingested

QUEUE = "annotation.events"
#: Three tries 50 ms and 100 ms apart: the contract tests must not wait for real back-off.
FAST = RetrySchedule(attempts=3, initial_seconds=0.05, maximum_seconds=0.2, jitter=0.0)


def image_event(n: int = 0) -> Envelope:
    return envelope_for(image_ingested("bus-test", n), source="ingest")


def make_bus(request: pytest.FixtureRequest, kind: str, retry: RetrySchedule = FAST) -> Bus:
    if kind == "inprocess":
        return InProcessBus(retry=retry, grace_seconds=10)
    return RabbitBus(
        request.getfixturevalue("rabbitmq_server"),
        retry=retry,
        namespace=request.getfixturevalue("bus_namespace"),
        heartbeat_seconds=2,
        grace_seconds=10,
    )


def inject_raw(bus: Bus, body: bytes) -> None:
    if isinstance(bus, InProcessBus):
        bus.publish_raw([QUEUE], body)
    else:
        assert isinstance(bus, RabbitBus)
        bus.publish_raw(QUEUE, body)


@contextmanager
def consuming(
    bus: Bus, handlers: Mapping[str, Handler], prefetch: int = 1, queue: str = QUEUE
) -> Iterator[dict[str, Any]]:
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    stop = threading.Event()
    state: dict[str, Any] = {"stop": stop}

    def run() -> None:
        state["stats"] = bus.consume(queue, handlers, loop, stop, prefetch=prefetch)

    consumer = threading.Thread(target=run, daemon=True)
    consumer.start()
    try:
        yield state
    finally:
        stop.set()
        consumer.join(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(timeout=5)
        assert not consumer.is_alive(), "consumer did not stop"


def wait_until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
