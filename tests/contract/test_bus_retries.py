"""Retries that survive an outage: the schedule, permanent vs transient, retry queues, replay of dead letters."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pika
import pytest

from medal.bus import Bus, PermanentFailure, RetrySchedule, UnknownDeadLetter
from medal.bus.rabbitmq import RabbitBus
from medal.bus.rabbitmq_topology import BROKER_DELIVERY_LIMIT, retry_queue
from medal.settings import Settings
from proto import Envelope, ImageIngested, Message, topology
from tests.contract.bus_helpers import FAST, QUEUE, consuming, image_event, make_bus, wait_until

#: Four tries 0.2 s, 0.4 s and 0.8 s apart, no jitter: long enough to measure, short enough to wait for.
MEASURED = RetrySchedule(attempts=4, initial_seconds=0.2, maximum_seconds=0.8, jitter=0.0)


@pytest.fixture(params=["inprocess", "rabbitmq"])
def measured_bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    the_bus = make_bus(request, request.param, MEASURED)
    yield the_bus
    the_bus.close()


@pytest.fixture(params=["inprocess", "rabbitmq"])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    the_bus = make_bus(request, request.param, FAST)
    yield the_bus
    the_bus.close()


def test_default_schedule_doubles_from_one_second_to_five_minutes_over_about_half_an_hour() -> None:
    schedule = RetrySchedule.from_settings(Settings())
    assert schedule == RetrySchedule()
    assert [schedule.nominal_delay(n) for n in range(1, 14)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300
    ]  # fmt: skip
    assert schedule.attempts == 14 and 25 * 60 < schedule.total_seconds() < 30 * 60
    assert schedule.tiers() == (1, 2, 4, 8, 16, 32, 64, 128, 256, 300)
    assert [schedule.tier(n) for n in (1, 2, 9, 10, 13)] == [1, 2, 9, 10, 10]
    assert schedule.should_retry(13) and not schedule.should_retry(14)


def test_jitter_only_shortens_a_delay_by_at_most_its_fraction() -> None:
    schedule = RetrySchedule(jitter=0.2)
    assert schedule.delay(3, rng=lambda: 0.0) == 4.0
    assert schedule.delay(3, rng=lambda: 0.999999) == pytest.approx(3.2, abs=1e-4)
    delays = {schedule.delay(3) for _ in range(50)}
    assert all(3.2 <= d <= 4.0 for d in delays) and len(delays) > 1


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"initial_seconds": 0}, {"initial_seconds": 5, "maximum_seconds": 1}, {"jitter": 1}]
)
def test_a_schedule_that_makes_no_sense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetrySchedule(**kwargs)  # type: ignore[arg-type]


def test_transient_failure_is_retried_with_growing_delays_and_dead_lettered_after_the_last_try(
    measured_bus: Bus,
) -> None:
    tries: list[float] = []

    async def down(envelope: Envelope, message: Message) -> None:
        tries.append(time.monotonic())
        raise ConnectionRefusedError("database down")

    envelope = image_event()
    measured_bus.publish(envelope)
    with consuming(measured_bus, {ImageIngested.TYPE: down}) as state:
        wait_until(lambda: len(measured_bus.dead_letters(QUEUE)) == 1)
        assert len(tries) == 4  # dead-lettered only after the last try
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    for gap, nominal in zip(gaps, (0.2, 0.4, 0.8), strict=True):
        assert nominal * 0.9 <= gap <= nominal + 1.0, gaps
    assert gaps[0] < gaps[1] < gaps[2]
    letter = measured_bus.dead_letters(QUEUE)[0]
    assert letter.message_id == str(envelope.id) and letter.message_type == ImageIngested.TYPE
    assert letter.attempts == 4 and "ConnectionRefusedError" in letter.reason
    assert state["stats"].retried == 3 and state["stats"].dead_lettered == 1


@pytest.mark.parametrize("kind", ["inprocess", "rabbitmq"])
def test_a_message_waiting_for_its_retry_holds_neither_consumer_nor_prefetch_slot(
    request: pytest.FixtureRequest, kind: str
) -> None:
    slow_retry = RetrySchedule(attempts=2, initial_seconds=3.0, maximum_seconds=3.0, jitter=0.0)
    bus = make_bus(request, kind, slow_retry)
    handled: dict[str, float] = {}
    failing, behind = image_event(1), image_event(2)

    async def handler(envelope: Envelope, message: Message) -> None:
        if envelope.id == failing.id and str(envelope.id) not in handled:
            handled[str(envelope.id)] = -1.0
            raise TimeoutError("storage slow")
        handled[str(envelope.id)] = time.monotonic()

    bus.publish(failing)
    with consuming(bus, {ImageIngested.TYPE: handler}, prefetch=1):
        wait_until(lambda: str(failing.id) in handled)
        started = time.monotonic()
        bus.publish(behind)  # with prefetch 1, it is handled while the failed one waits 3 s
        wait_until(lambda: str(behind.id) in handled, seconds=10)
        assert handled[str(behind.id)] - started < 2.0
        wait_until(lambda: handled[str(failing.id)] > 0, seconds=15)  # then the retry is handled
    assert handled[str(failing.id)] - started >= 2.5
    assert bus.dead_letters(QUEUE) == []
    bus.close()


def test_permanent_failure_skips_the_schedule(measured_bus: Bus) -> None:
    calls: list[int] = []

    async def refuses(envelope: Envelope, message: Message) -> None:
        calls.append(1)
        raise PermanentFailure("project-not-found: no project 'p'")

    measured_bus.publish(image_event())
    started = time.monotonic()
    with consuming(measured_bus, {ImageIngested.TYPE: refuses}) as state:
        wait_until(lambda: len(measured_bus.dead_letters(QUEUE)) == 1)
        elapsed = time.monotonic() - started
    assert calls == [1] and elapsed < 5 and state["stats"].retried == 0
    assert measured_bus.dead_letters(QUEUE)[0].reason == "permanent failure: project-not-found: no project 'p'"


def test_replayed_dead_letter_is_handled_on_its_work_queue_once(bus: Bus) -> None:
    healthy = threading.Event()
    handled: list[str] = []

    async def handler(envelope: Envelope, message: Message) -> None:
        if not healthy.is_set():
            raise RuntimeError("bug, fixed later")
        handled.append(str(envelope.id))

    first, second = image_event(1), image_event(2)
    bus.publish(first)
    bus.publish(second)
    with consuming(bus, {ImageIngested.TYPE: handler}):
        wait_until(lambda: len(bus.dead_letters(QUEUE)) == 2)
        with pytest.raises(UnknownDeadLetter, match="not dead-lettered"):
            bus.replay(QUEUE, [str(first.id), "00000000-0000-0000-0000-000000000000"])
        assert len(bus.dead_letters(QUEUE)) == 2  # an unknown id replays nothing
        healthy.set()
        replayed = bus.replay(QUEUE, [str(first.id)])
        assert [letter.message_id for letter in replayed] == [str(first.id)]
        wait_until(lambda: handled == [str(first.id)])
        assert [letter.message_id for letter in bus.dead_letters(QUEUE)] == [str(second.id)]
        assert [letter.message_id for letter in bus.replay(QUEUE)] == [str(second.id)]
        wait_until(lambda: len(handled) == 2)
        time.sleep(0.3)
    assert handled == [str(first.id), str(second.id)] and bus.dead_letters(QUEUE) == []
    assert bus.replay(QUEUE) == []
    with pytest.raises(ValueError, match="unknown queue"):
        bus.dead_letters("no.such.queue")


def test_rabbitmq_declares_one_retry_queue_per_delay_that_returns_to_the_work_queue(
    rabbitmq_server: str, bus_namespace: str
) -> None:
    schedule = RetrySchedule(attempts=3, initial_seconds=2.0, maximum_seconds=2.0, jitter=0.0)
    bus = RabbitBus(rabbitmq_server, namespace=bus_namespace, retry=schedule)
    bus.check()
    tries: list[float] = []

    async def flaky(envelope: Envelope, message: Message) -> None:
        tries.append(time.monotonic())
        if len(tries) == 1:
            raise ConnectionResetError("broker of a dependency restarting")

    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_server))
    channel = connection.channel()
    try:
        bus.publish(image_event())
        with consuming(bus, {ImageIngested.TYPE: flaky}):
            wait_until(lambda: len(tries) == 1)
            for base in topology.QUEUES:  # declared by the consumer, one tier for the one delay
                channel.queue_declare(queue=f"{bus_namespace}.{retry_queue(base, 1)}", passive=True)
            parked = f"{bus_namespace}.{retry_queue(QUEUE, 1)}"
            wait_until(lambda: channel.queue_declare(queue=parked, passive=True).method.message_count == 1)
            work = channel.queue_declare(queue=f"{bus_namespace}.{QUEUE}", passive=True).method
            assert work.message_count == 0  # neither ready nor unacked on the work queue while it waits
            wait_until(lambda: len(tries) == 2, seconds=10)
        assert 1.8 <= tries[1] - tries[0] < 4.0
        assert bus.dead_letters(QUEUE) == []
    finally:
        connection.close()
        bus.close()


def test_rabbitmq_redelivery_after_a_consumer_crash_counts_as_a_try(rabbitmq_server: str, bus_namespace: str) -> None:
    bus = RabbitBus(rabbitmq_server, namespace=bus_namespace, retry=FAST)
    bus.check()
    envelope = image_event()
    bus.publish(envelope)
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_server))
    method = None
    while method is None:  # a consumer takes the message and dies without a decision
        method, _properties, _body = connection.channel().basic_get(f"{bus_namespace}.{QUEUE}", auto_ack=False)
    connection.close()
    calls: list[int] = []

    async def broken(envelope: Envelope, message: Message) -> None:
        calls.append(1)
        raise RuntimeError("bug")

    with consuming(bus, {ImageIngested.TYPE: broken}):
        wait_until(lambda: len(bus.dead_letters(QUEUE)) == 1)
    assert len(calls) == FAST.attempts - 1  # the crashed hand-out was the first of the three tries
    assert bus.dead_letters(QUEUE)[0].attempts == FAST.attempts
    assert FAST.attempts < BROKER_DELIVERY_LIMIT  # the broker's own limit is only a safety net
    bus.close()
