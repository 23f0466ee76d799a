"""PostgreSQL away for 30 s while messages are in flight: nothing is dead-lettered, everything is handled once.

The real RabbitBus and a real :class:`medal.unit_of_work.Consumer` whose handler writes a row in the
same unit of work as its inbox claim and emits a follow-up through the outbox. A TCP proxy between
the platform and PostgreSQL is cut (the shared server is never stopped) while messages are handled.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from medal.bus import RetrySchedule
from medal.bus.rabbitmq import RabbitBus
from medal.db.engine import Database
from medal.db.migrate import upgrade
from medal.db.schema.messaging import inbox, outbox
from medal.platform import Platform
from medal.settings import Settings
from medal.unit_of_work import Consumer, MessageContext
from proto import ImageIngested, IngestJobCompleted
from tests.contract.bus_helpers import QUEUE, wait_until
from tests.contract.tcp_proxy import TcpProxy
from tests.factories import image_ingested

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICE = "outage-test"
MESSAGES = 20
OUTAGE_SECONDS = 30
BROKER_OUTAGE_SECONDS = 15
#: Sixteen tries 0.5 s, 1 s, 2 s, then 4 s apart: more than 40 s of retrying, back within 4 s of the end.
SCHEDULE = RetrySchedule(attempts=16, initial_seconds=0.5, maximum_seconds=4.0, jitter=0.2)

effects = sa.Table(
    "outage_effects",
    sa.MetaData(),
    sa.Column("message_id", sa.String(36), nullable=False),  # no unique key: a double would show
    sa.Column("kind", sa.String(16), nullable=False),
)

consumer: Consumer[None] = Consumer(SERVICE)


@consumer.handles(ImageIngested)
async def on_image(ctx: MessageContext[None], event: ImageIngested) -> None:
    await asyncio.sleep(0.2)  # work before the transaction keeps several messages in flight
    async with ctx.unit_of_work() as uow:
        await uow.conn.execute(sa.insert(effects).values(message_id=str(ctx.envelope.id), kind="image"))
        follow_up = IngestJobCompleted(
            project=event.project, job_id=event.image_id, accepted=1, duplicates=0, quarantined=0, refused=0
        )
        await uow.emit(follow_up, message_id=uuid.uuid5(ctx.envelope.id, "job"))


@consumer.handles(IngestJobCompleted)
async def on_job(ctx: MessageContext[None], event: IngestJobCompleted) -> None:
    async with ctx.unit_of_work() as uow:
        await uow.conn.execute(sa.insert(effects).values(message_id=str(ctx.envelope.id), kind="job"))


class Running:
    """The platform on an event loop of its own thread, consuming ``QUEUE`` on another thread."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.loop = asyncio.new_event_loop()
        self.loop_thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stats: Any = None
        self.consumer_thread = threading.Thread(target=self._consume, daemon=True)

    def _consume(self) -> None:
        self.stats = self.platform.bus.consume(
            QUEUE, consumer.bind(self.platform), self.loop, self.platform.stopping, prefetch=4
        )

    def call(self, coroutine: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)

    def start(self) -> None:
        self.loop_thread.start()

        async def start_relay() -> None:
            self.platform.start_relay()

        self.call(start_relay())
        self.consumer_thread.start()

    def stop(self) -> None:
        self.platform.stopping.set()
        self.consumer_thread.join(timeout=60)
        self.call(self.platform.stop(), timeout=120)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.loop_thread.join(timeout=10)


@pytest.fixture
def database(postgres_url: str) -> Iterator[Database]:
    """A direct connection to the test database (not through the proxy) for setup and checks."""
    upgrade(postgres_url)
    db = Database(postgres_url)

    async def create() -> None:
        async with db.begin() as conn:
            await conn.run_sync(effects.metadata.create_all)
        await db.dispose()

    asyncio.run(create())
    yield db


def count(db: Database, query: Any) -> int:
    async def run() -> int:
        try:
            async with db.connect() as conn:
                return int((await conn.execute(query)).scalar_one())
        finally:
            await db.dispose()  # each asyncio.run has its own loop: never keep its connections

    return asyncio.run(run())


def start_platform(tmp_path: Path, database_url: str, broker_url: str, bus_namespace: str) -> tuple[RabbitBus, Running]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        broker_url=broker_url,
        bus_namespace=bus_namespace,
        outbox_poll_seconds=0.2,
    )
    bus = RabbitBus(broker_url, namespace=bus_namespace, retry=SCHEDULE, heartbeat_seconds=5)
    running = Running(Platform.build(settings, [SERVICE], bus=bus))
    running.start()
    return bus, running


def produce(running: Running, numbers: range) -> None:
    async def emit_all() -> None:
        for n in numbers:
            async with running.platform.unit_of_work(SERVICE) as uow:
                await uow.emit(image_ingested("outage", n))

    running.call(emit_all())


def hold_cut(proxy: TcpProxy, seconds: float) -> None:
    cut_at = time.monotonic()
    while time.monotonic() - cut_at < seconds:
        time.sleep(0.5)
        proxy.cut()  # connections accepted in a race with the first cut are closed too


def assert_each_handled_once(database: Database, bus: RabbitBus, running: Running, expected: int) -> None:
    per_message = sa.select(effects.c.message_id).group_by(effects.c.message_id).having(sa.func.count() > 1)
    doubles = sa.select(sa.func.count()).select_from(per_message.subquery())
    assert count(database, doubles) == 0
    assert count(database, sa.select(sa.func.count()).select_from(effects)) == expected
    claims = sa.select(sa.func.count()).select_from(inbox).where(inbox.c.consumer == SERVICE)
    assert count(database, claims) == expected
    pending = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
    assert count(database, pending) == 0
    assert bus.dead_letters(QUEUE) == []
    assert running.stats.dead_lettered == 0


IMAGES = sa.select(sa.func.count()).select_from(effects).where(effects.c.kind == "image")
EVERYTHING = sa.select(sa.func.count()).select_from(effects)


def test_postgres_away_for_30_seconds_loses_nothing_and_handles_everything_once(
    database: Database, postgres_url: str, rabbitmq_server: str, bus_namespace: str, tmp_path: Path
) -> None:
    url = make_url(postgres_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        database_url = url.set(port=proxy.port).render_as_string(hide_password=False)
        bus, running = start_platform(tmp_path, database_url, rabbitmq_server, bus_namespace)
        try:
            produce(running, range(MESSAGES))
            wait_until(lambda: count(database, IMAGES) >= 3, seconds=30)
            proxy.cut()
            handled_at_cut = count(database, IMAGES)
            assert handled_at_cut < MESSAGES, "the outage must begin while messages are in flight"
            hold_cut(proxy, OUTAGE_SECONDS)
            assert count(database, IMAGES) == handled_at_cut  # nothing got through the cut
            proxy.restore()
            wait_until(lambda: count(database, EVERYTHING) == 2 * MESSAGES, seconds=30)
            time.sleep(1.0)  # a late duplicate would show now
        finally:
            running.stop()
    assert_each_handled_once(database, bus, running, 2 * MESSAGES)
    assert running.stats.retried > 0  # the handlers did fail during the outage, and were retried
    assert proxy.refused > 0  # the platform did try the database during the outage


def test_broker_away_loses_nothing_publishing_and_consuming_resume(
    database: Database, postgres_url: str, rabbitmq_server: str, bus_namespace: str, tmp_path: Path
) -> None:
    amqp = make_url(rabbitmq_server.replace("amqp://", "postgresql://", 1))  # only to read host and port
    with TcpProxy(amqp.host or "127.0.0.1", amqp.port or 5672) as proxy:
        proxied = rabbitmq_server.replace(f":{amqp.port or 5672}/", f":{proxy.port}/", 1)
        _bus, running = start_platform(tmp_path, postgres_url, proxied, bus_namespace)
        try:
            produce(running, range(MESSAGES // 2))
            wait_until(lambda: count(database, IMAGES) >= 3, seconds=30)
            proxy.cut()
            assert count(database, IMAGES) < MESSAGES // 2, "the outage must begin while messages are in flight"
            produce(running, range(MESSAGES // 2, MESSAGES))  # committed while the broker is away
            hold_cut(proxy, BROKER_OUTAGE_SECONDS)
            proxy.restore()
            wait_until(lambda: count(database, EVERYTHING) == 2 * MESSAGES, seconds=40)
            time.sleep(1.0)
        finally:
            running.stop()
    assert_each_handled_once(database, RabbitBus(rabbitmq_server, namespace=bus_namespace), running, 2 * MESSAGES)
    assert proxy.refused > 0  # relay and consumer did try to reconnect during the outage
