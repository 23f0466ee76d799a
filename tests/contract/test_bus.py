"""Both buses honour one contract: at-least-once, acks, retries with a limit, dead letters."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from medal.bus import Bus, ConsumerStats, PermanentFailure, UnroutableMessage
from medal.bus.rabbitmq import RabbitBus
from proto import Envelope, ImageIngested, Message, envelope_for
from tests.contract.bus_helpers import QUEUE, consuming, image_event, inject_raw, make_bus, wait_until

__all__ = ["image_event"]  # tests/contract/test_database.py takes it from here


@pytest.fixture(params=["inprocess", "rabbitmq"])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    the_bus = make_bus(request, request.param)
    yield the_bus
    the_bus.close()


class _Orphan(Message):
    """A message type no queue receives (not registered either)."""

    TYPE: ClassVar[str] = "orphan.test.v1"
    KIND: ClassVar[str] = "event"
    project: str


def test_published_message_is_delivered_and_acked(bus: Bus) -> None:
    seen: list[Envelope] = []

    async def handler(envelope: Envelope, message: Message) -> None:
        assert isinstance(message, ImageIngested)
        seen.append(envelope)

    sent = [image_event(n) for n in range(5)]
    for envelope in sent:
        bus.publish(envelope)
    with consuming(bus, {ImageIngested.TYPE: handler}, prefetch=3) as state:
        wait_until(lambda: len(seen) == 5)
    assert sorted(str(e.id) for e in seen) == sorted(str(e.id) for e in sent)
    stats: ConsumerStats = state["stats"]
    assert stats.acked == 5 and stats.dead_lettered == 0
    assert bus.dead_letters(QUEUE) == []


def test_message_published_before_consumer_starts_is_kept(bus: Bus) -> None:
    bus.publish(image_event())
    seen: list[str] = []

    async def handler(envelope: Envelope, message: Message) -> None:
        seen.append(str(envelope.id))

    with consuming(bus, {ImageIngested.TYPE: handler}):
        wait_until(lambda: len(seen) == 1)


def test_unroutable_type_is_refused_at_publish(bus: Bus) -> None:
    with pytest.raises(UnroutableMessage, match=_Orphan.TYPE):
        bus.publish(envelope_for(_Orphan(project="p"), source="trainer"))


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"\xff\xfe not utf-8", "malformed"),
        (b'{"id": "not a uuid"}', "malformed"),
        (
            b'{"id": "6f1f3c4e-2a51-4f0b-9d7e-3b8f1d2c9a10", "type": "no.such.v1", "source": "x", '
            b'"time": "2026-01-01T00:00:00Z", "correlation_id": "6f1f3c4e-2a51-4f0b-9d7e-3b8f1d2c9a10", '
            b'"payload": {}}',
            "unknown message type",
        ),
    ],
)
def test_malformed_messages_are_dead_lettered_not_retried(bus: Bus, body: bytes, reason: str) -> None:
    calls: list[str] = []

    async def handler(envelope: Envelope, message: Message) -> None:
        calls.append("called")

    inject_raw(bus, body)
    bus.publish(image_event())  # a good message behind the bad one still flows
    with consuming(bus, {ImageIngested.TYPE: handler}) as state:
        wait_until(lambda: len(calls) == 1 and len(bus.dead_letters(QUEUE)) == 1)
    letters = bus.dead_letters(QUEUE)
    assert len(letters) == 1
    assert reason in letters[0].reason
    assert letters[0].body == body
    assert state["stats"].dead_lettered == 1


def test_transient_failure_is_retried_then_succeeds(bus: Bus) -> None:
    attempts: list[int] = []

    async def flaky(envelope: Envelope, message: Message) -> None:
        attempts.append(1)
        if len(attempts) < 2:
            raise ConnectionError("database restarting")

    bus.publish(image_event())
    with consuming(bus, {ImageIngested.TYPE: flaky}) as state:
        wait_until(lambda: state.get("done") or len(attempts) >= 2)
        wait_until(lambda: bus.dead_letters(QUEUE) == [] and len(attempts) == 2)
        time.sleep(0.5)
    assert len(attempts) == 2
    assert state["stats"].acked == 1 and state["stats"].retried == 1


def test_always_failing_message_is_dead_lettered_after_the_limit(bus: Bus) -> None:
    attempts: list[int] = []

    async def broken(envelope: Envelope, message: Message) -> None:
        attempts.append(1)
        raise RuntimeError("bug")

    envelope = image_event()
    bus.publish(envelope)
    with consuming(bus, {ImageIngested.TYPE: broken}):
        wait_until(lambda: len(bus.dead_letters(QUEUE)) == 1)
    assert len(attempts) == 3  # the delivery limit
    letter = bus.dead_letters(QUEUE)[0]
    assert letter.message_id == str(envelope.id)
    assert "delivery limit 3" in letter.reason and "RuntimeError" in letter.reason
    assert letter.attempts == 3 and letter.dead_lettered_at is not None


def test_permanent_failure_is_dead_lettered_at_once(bus: Bus) -> None:
    attempts: list[int] = []

    async def refuses(envelope: Envelope, message: Message) -> None:
        attempts.append(1)
        raise PermanentFailure("project was deleted")

    bus.publish(image_event())
    with consuming(bus, {ImageIngested.TYPE: refuses}):
        wait_until(lambda: len(bus.dead_letters(QUEUE)) == 1)
    assert len(attempts) == 1
    letter = bus.dead_letters(QUEUE)[0]
    assert "project was deleted" in letter.reason and letter.attempts == 1


def test_message_without_handler_on_this_queue_is_dead_lettered(bus: Bus) -> None:
    bus.publish(image_event())
    with consuming(bus, {}):
        wait_until(lambda: len(bus.dead_letters(QUEUE)) == 1)
    assert "no handler" in bus.dead_letters(QUEUE)[0].reason


def test_stop_lets_the_in_flight_message_finish(bus: Bus) -> None:
    started = threading.Event()
    finished: list[str] = []

    async def slow(envelope: Envelope, message: Message) -> None:
        started.set()
        await asyncio.sleep(1.5)
        finished.append(str(envelope.id))

    bus.publish(image_event())
    with consuming(bus, {ImageIngested.TYPE: slow}) as state:
        assert started.wait(20)
        state["stop"].set()  # like SIGTERM mid-message
    assert len(finished) == 1
    assert state["stats"].acked == 1
    seen_again: list[str] = []

    async def record(envelope: Envelope, message: Message) -> None:
        seen_again.append(str(envelope.id))

    with consuming(bus, {ImageIngested.TYPE: record}):
        time.sleep(1.0)
    assert seen_again == []  # acked: not delivered twice


def test_rabbitmq_handler_longer_than_heartbeat_keeps_connection(rabbitmq_server: str, bus_namespace: str) -> None:
    """Handlers run off the pika thread, so heartbeats flow while they work (heartbeat 2 s, work 7 s)."""
    bus = RabbitBus(rabbitmq_server, namespace=bus_namespace, heartbeat_seconds=2)
    done: list[str] = []

    async def long_work(envelope: Envelope, message: Message) -> None:
        await asyncio.to_thread(time.sleep, 7)
        done.append(str(envelope.id))

    bus.publish(image_event())
    with consuming(bus, {ImageIngested.TYPE: long_work}) as state:
        wait_until(lambda: len(done) == 1, seconds=30)
        time.sleep(0.5)
    assert state["stats"].acked == 1 and state["stats"].retried == 0
    assert len(done) == 1
    bus.close()


def test_rabbitmq_unreachable_gives_bus_error() -> None:
    from medal.bus import BusError

    with pytest.raises(BusError, match="cannot connect to RabbitMQ"):
        RabbitBus("amqp://guest:guest@127.0.0.1:9/%2F").check()
