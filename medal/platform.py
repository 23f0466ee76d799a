"""The composition root's product: the adapters one process uses, built from settings."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medal.bus import Bus, Handler, build_bus
from medal.db.engine import Database
from medal.db.messaging import OutboxRelay
from medal.settings import Settings
from medal.storage import ObjectStore, build_store
from medal.unit_of_work import UnitOfWork, open_unit_of_work

log = logging.getLogger("medal.platform")

HandlerFactory = Callable[["Platform"], Mapping[str, Handler]]
#: A long-running task of a service besides its consumer (e.g. the trainer's job loop): runs until the event is set.
BackgroundTask = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class Platform:
    """Settings plus the database, object store, bus and outbox relay of one process."""

    settings: Settings
    db: Database
    store: ObjectStore
    bus: Bus
    relay: OutboxRelay
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop_relay: asyncio.Event = field(default_factory=asyncio.Event)
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _stop_background: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def build(cls, settings: Settings, sources: list[str], *, bus: Bus | None = None) -> Platform:
        db = Database(settings.effective_database_url)
        the_bus = bus or build_bus(settings)
        return cls(
            settings=settings,
            db=db,
            store=build_store(settings),
            bus=the_bus,
            relay=OutboxRelay(db, the_bus, sources, poll_seconds=settings.outbox_poll_seconds),
        )

    def unit_of_work(
        self, source: str, *, correlation_id: uuid.UUID | None = None
    ) -> AbstractAsyncContextManager[UnitOfWork]:
        """One transaction of ``source``'s rows and the messages they cause (published after commit)."""
        return open_unit_of_work(self, source, correlation_id=correlation_id)

    async def check(self) -> dict[str, str]:
        """Readiness of each dependency: 'ok' or the reason it is not."""
        results: dict[str, str] = {}
        try:
            await self.db.check()
            results["database"] = "ok"
        except Exception as exc:
            results["database"] = str(exc)
        for name, probe in (("storage", self.store.check), ("bus", self.bus.check)):
            try:
                await asyncio.to_thread(probe)
                results[name] = "ok"
            except Exception as exc:
                results[name] = str(exc)
        return results

    def start_relay(self) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self.relay.run(self._stop_relay)))

    def start_background(self, tasks: Sequence[BackgroundTask]) -> None:
        """Run each task on the current event loop until :meth:`stop` (after the consumers stopped)."""
        loop = asyncio.get_running_loop()
        self._background.extend(loop.create_task(task(self._stop_background)) for task in tasks)

    def start_consumer(
        self,
        queue: str,
        handlers: Mapping[str, Handler],
        *,
        prefetch: int,
        heartbeat_file: Path | None = None,
    ) -> None:
        """Consume ``queue`` on a thread of its own; handlers run on the current event loop."""
        loop = asyncio.get_running_loop()

        def tick() -> None:
            if heartbeat_file is not None:
                heartbeat_file.touch()

        def consume() -> None:
            try:
                self.bus.consume(queue, handlers, loop, self.stopping, prefetch=prefetch, on_tick=tick)
            except Exception:
                log.exception("consumer of %s stopped", queue)

        thread = threading.Thread(target=consume, name=f"consumer-{queue}", daemon=True)
        thread.start()
        self._threads.append(thread)

    async def stop(self) -> None:
        """Stop consumers (finishing in-flight work), then background tasks, then the relay, then close adapters."""
        self.stopping.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 60)
        self._stop_background.set()
        for background in self._background:
            try:
                await background
            except Exception:
                log.exception("a background task failed")
        self._stop_relay.set()
        for task in self._tasks:
            await task
        self.relay.close()
        self.bus.close()
        await self.db.dispose()
