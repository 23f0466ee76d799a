"""A service's queue worker process: ``medal worker SERVICE``.

The pika connection lives on the main thread (heartbeats keep flowing); handlers run on an asyncio
loop in a second thread together with the outbox relay. SIGTERM stops taking new messages, lets
the in-flight ones finish (or returns them to the queue after the grace period) and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType

from medal.app import service_background, service_handlers
from medal.bus import ConsumerStats
from medal.platform import Platform
from medal.settings import Settings
from proto.topology import SERVICE_QUEUE

log = logging.getLogger("medal.worker")


def run_worker(settings: Settings, service: str) -> ConsumerStats:
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, name="worker-loop", daemon=True)
    loop_thread.start()
    platform = Platform.build(settings, [service])

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received signal %d: finishing in-flight work", service, signum)
        platform.stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    async def start() -> None:
        platform.start_relay()
        platform.start_background(service_background(service, platform))

    asyncio.run_coroutine_threadsafe(start(), loop).result()
    heartbeat = settings.worker_heartbeat_file

    def tick() -> None:
        if heartbeat is not None:
            heartbeat.touch()

    queue = SERVICE_QUEUE[service]
    retry = platform.bus.retry
    log.info(
        "%s worker consuming %s (a failing message gets %d tries over about %.0f min, then the dead-letter queue)",
        service,
        queue,
        retry.attempts,
        retry.total_seconds() / 60,
    )
    try:
        stats = platform.bus.consume(
            queue,
            service_handlers(service, platform),
            loop,
            platform.stopping,
            prefetch=settings.bus_prefetch,
            on_tick=tick,
        )
    finally:
        asyncio.run_coroutine_threadsafe(platform.stop(), loop).result(timeout=120)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(timeout=10)
    log.info(
        "%s worker stopped: %d acked, %d retried, %d dead-lettered",
        service,
        stats.acked,
        stats.retried,
        stats.dead_lettered,
    )
    return stats
