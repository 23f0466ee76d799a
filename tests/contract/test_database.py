"""Migrations, idempotent inserts and the outbox/inbox on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from medal.bus.inprocess import InProcessBus
from medal.db.engine import Database, DatabaseError, insert_ignore
from medal.db.messaging import OutboxRelay, add_to_outbox, claim_message
from medal.db.migrate import downgrade, upgrade
from medal.db.schema import metadata
from medal.db.schema.annotation import projects
from medal.db.schema.base import utcnow
from medal.db.schema.messaging import outbox
from tests.contract.test_bus import image_event


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_migrations_build_the_schema_from_nothing_without_drift(database_url: str) -> None:
    upgrade(database_url)

    async def diff() -> list[object]:
        db = Database(database_url)
        async with db.connect() as conn:
            changes = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        await db.dispose()
        assert set(metadata.tables) <= tables
        return list(changes)

    assert run(diff()) == [], "tables in medal/db/schema differ from the migrations: add a revision"


def test_downgrade_and_upgrade_round_trip(database_url: str) -> None:
    upgrade(database_url)
    downgrade(database_url, "base")
    upgrade(database_url)

    async def check() -> None:
        db = Database(database_url)
        await db.check()
        await db.dispose()

    run(check())


def test_check_refuses_an_unmigrated_database(database_url: str) -> None:
    async def check() -> None:
        db = Database(database_url)
        try:
            await db.check()
        finally:
            await db.dispose()

    with pytest.raises(DatabaseError, match=r"not usable|no schema"):
        run(check())


def test_insert_ignore_and_inbox_are_idempotent(database_url: str) -> None:
    upgrade(database_url)

    async def scenario() -> tuple[bool, bool, bool, bool, int]:
        db = Database(database_url)
        row = {"id": str(uuid.uuid4()), "name": "p1", "created_at": utcnow()}
        async with db.begin() as conn:
            first = await insert_ignore(conn, projects, row, ["id"])
        async with db.begin() as conn:
            second = await insert_ignore(conn, projects, row, ["id"])
        message_id = str(uuid.uuid4())
        async with db.begin() as conn:
            claim1 = await claim_message(conn, "annotation", message_id)
        async with db.begin() as conn:
            claim2 = await claim_message(conn, "annotation", message_id)
        async with db.connect() as conn:
            count = len((await conn.execute(select(projects))).all())
        await db.dispose()
        return first, second, claim1, claim2, count

    assert run(scenario()) == (True, False, True, False, 1)


def test_outbox_publishes_after_commit_only(database_url: str) -> None:
    upgrade(database_url)
    bus = InProcessBus()

    async def scenario() -> tuple[int, int, int, list[object]]:
        db = Database(database_url)
        relay = OutboxRelay(db, bus, ["ingest"])
        committed, rolled_back = image_event(1), image_event(2)
        async with db.begin() as conn:
            await add_to_outbox(conn, committed)
        with pytest.raises(RuntimeError):
            async with db.begin() as conn:
                await add_to_outbox(conn, rolled_back)
                raise RuntimeError("the business write failed")
        first = await relay.publish_pending()
        again = await relay.publish_pending()
        async with db.connect() as conn:
            rows = (await conn.execute(select(outbox.c.id, outbox.c.sent_at))).all()
        relay.close()
        await db.dispose()
        return (
            first,
            again,
            bus.depth("annotation.events"),
            [(r.id == str(committed.id), r.sent_at is not None) for r in rows],
        )

    first, again, depth, rows = run(scenario())
    assert (first, again, depth) == (1, 0, 1)
    assert rows == [(True, True)]


def test_outbox_keeps_messages_while_the_broker_is_down(database_url: str) -> None:
    from medal.bus import BusError

    upgrade(database_url)

    class DownBus(InProcessBus):
        def publish(self, envelope):  # type: ignore[no-untyped-def]
            raise BusError("broker away")

    async def scenario() -> tuple[int, int]:
        db = Database(database_url)
        async with db.begin() as conn:
            await add_to_outbox(conn, image_event(3))
        down = OutboxRelay(db, DownBus(), ["ingest"])
        during = await down.publish_pending()
        up_bus = InProcessBus()
        up = OutboxRelay(db, up_bus, ["ingest"])
        after = await up.publish_pending()
        down.close()
        up.close()
        await db.dispose()
        return during, after

    assert run(scenario()) == (0, 1)
