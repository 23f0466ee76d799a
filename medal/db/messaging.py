"""Transactional outbox and inbox.

A service writes its business rows and the messages they cause in one transaction
(:func:`add_to_outbox`); the :class:`OutboxRelay` publishes committed messages afterwards and marks
them sent. A crash between publish and mark re-sends, so consumers record each message id in the
inbox in the same transaction as their side effects (:func:`claim_message`) and skip repeats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.bus.base import Bus, BusError, UnroutableMessage
from medal.db.engine import Database, insert_ignore
from medal.db.schema.base import utcnow
from medal.db.schema.messaging import inbox, outbox
from proto.envelope import Envelope, encode

log = logging.getLogger("medal.outbox")


async def add_to_outbox(conn: AsyncConnection, envelope: Envelope) -> None:
    """Queue a message for publishing once the surrounding transaction commits."""
    await insert_ignore(
        conn,
        outbox,
        {
            "id": str(envelope.id),
            "source": envelope.source,
            "message_type": envelope.type,
            "body": encode(envelope),
            "created_at": utcnow(),
            "attempts": 0,
        },
        ["id"],
    )


async def claim_message(conn: AsyncConnection, consumer: str, message_id: str) -> bool:
    """Record that ``consumer`` processed ``message_id``; False if it already had (skip the work)."""
    return await insert_ignore(
        conn,
        inbox,
        {"consumer": consumer, "message_id": message_id, "processed_at": utcnow()},
        ["consumer", "message_id"],
    )


class OutboxRelay:
    """Publishes committed outbox rows of the given sources, oldest first."""

    def __init__(self, db: Database, bus: Bus, sources: Iterable[str], *, poll_seconds: float = 0.5) -> None:
        self.db = db
        self.bus = bus
        self.sources = sorted(set(sources))
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-relay")
        self._loop: asyncio.AbstractEventLoop | None = None
        #: True when the last pass stopped because the broker would not take a message.
        self.broker_unavailable = False

    def notify(self) -> None:
        """Ask for a publish pass soon (safe from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def publish_pending(self, limit: int = 100) -> int:
        """One pass; returns how many messages were published."""
        published = 0
        self.broker_unavailable = False
        async with self.db.begin() as conn:
            rows = (
                await conn.execute(
                    select(outbox.c.id, outbox.c.body, outbox.c.message_type, outbox.c.attempts)
                    .where(outbox.c.sent_at.is_(None), outbox.c.source.in_(self.sources))
                    .order_by(outbox.c.created_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            loop = asyncio.get_running_loop()
            for row in rows:
                envelope = Envelope.model_validate_json(row.body)
                try:
                    await loop.run_in_executor(self._executor, self.bus.publish, envelope)
                except UnroutableMessage as exc:
                    log.error("outbox message %s (%s) is unroutable: %s", row.id, row.message_type, exc)
                    await conn.execute(
                        update(outbox)
                        .where(outbox.c.id == row.id)
                        .values(attempts=row.attempts + 1, last_error=str(exc)[:500])
                    )
                    continue
                except BusError as exc:
                    log.debug("outbox relay cannot publish now (%s)", exc)
                    self.broker_unavailable = True
                    break
                await conn.execute(update(outbox).where(outbox.c.id == row.id).values(sent_at=utcnow()))
                published += 1
        return published

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set; backs off (up to 5 s) while the database or the broker is away."""
        self._loop = asyncio.get_running_loop()
        failures = 0
        while not stop.is_set():
            published = 0
            try:
                published = await self.publish_pending()
                problem = "the broker is unavailable" if self.broker_unavailable else None
            except Exception as exc:
                problem = f"the database is unavailable ({type(exc).__name__})"
                if failures == 0:
                    log.exception("outbox relay pass failed")
            if problem is None:
                if failures:
                    log.info("outbox relay publishing again after %d failed pass(es)", failures)
                failures = 0
            else:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("outbox relay cannot publish: %s; retrying with back-off", problem)
            if published and problem is None:
                continue
            wait = self.poll_seconds if failures == 0 else min(5.0, self.poll_seconds * 2 ** min(failures, 10))
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            # While failing, a commit's notify() does not cut the back-off short: only stop does.
            await asyncio.wait(
                waiters if failures == 0 else waiters[1:], timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
