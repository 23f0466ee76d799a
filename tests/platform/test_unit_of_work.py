"""The unit of work: inbox claim, outbox after commit, relay woken, domain refusals mapped for the bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from medal.bus import PermanentFailure
from medal.bus.inprocess import InProcessBus
from medal.db.migrate import upgrade
from medal.db.schema.messaging import inbox, outbox
from medal.domain_errors import NotFound, NotYetAvailable
from medal.platform import Platform
from medal.settings import Settings
from medal.unit_of_work import Consumer, MessageContext
from proto import ImageIngested, IngestJobCompleted, envelope_for
from tests.factories import image_ingested


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    settings = Settings(data_dir=tmp_path / "medal", api_keys=[])
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    built = Platform.build(settings, ["annotation"], bus=InProcessBus())
    try:
        yield built
    finally:
        await built.stop()


async def _count(platform: Platform, table: object) -> int:
    async with platform.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


class Woken:
    def __init__(self) -> None:
        self.times = 0

    def __call__(self) -> None:
        self.times += 1


async def test_a_use_case_emits_into_the_outbox_and_wakes_the_relay_only_after_commit(platform: Platform) -> None:
    woken = Woken()
    platform.relay.notify = woken  # type: ignore[method-assign]
    async with platform.unit_of_work("annotation") as uow:
        envelope = await uow.emit(image_ingested("p", 1))
        assert woken.times == 0, "the relay must not be woken before the commit"
    assert woken.times == 1
    assert envelope.source == "annotation"
    assert await _count(platform, outbox) == 1


async def test_a_failed_use_case_leaves_no_message_and_does_not_wake_the_relay(platform: Platform) -> None:
    woken = Woken()
    platform.relay.notify = woken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        async with platform.unit_of_work("annotation") as uow:
            await uow.emit(image_ingested("p", 2))
            raise RuntimeError("the use case failed after emitting")
    assert woken.times == 0
    assert await _count(platform, outbox) == 0


async def test_a_handler_runs_once_per_message_id_and_its_emissions_carry_the_correlation(platform: Platform) -> None:
    consumer: Consumer[None] = Consumer("annotation")
    seen: list[str] = []

    @consumer.handles(ImageIngested)
    async def on_image(ctx: MessageContext[None], event: ImageIngested) -> None:
        async with ctx.unit_of_work() as uow:
            seen.append(str(event.image_id))
            await uow.emit(
                IngestJobCompleted(
                    project="p", job_id=event.image_id, accepted=1, duplicates=0, quarantined=0, refused=0
                )
            )

    handlers = consumer.bind(platform)
    assert set(handlers) == {ImageIngested.TYPE}
    event = image_ingested("p", 3)
    envelope = envelope_for(event, source="ingest")
    for _ in range(3):  # at-least-once delivery: the same message three times
        await handlers[ImageIngested.TYPE](envelope, event)
    assert seen == [str(event.image_id)]
    assert await _count(platform, inbox) == 1
    async with platform.db.connect() as conn:
        rows = (await conn.execute(select(outbox.c.body))).all()
    assert len(rows) == 1 and str(envelope.correlation_id).encode() in rows[0].body


async def test_domain_refusals_become_dead_letters_or_retries(platform: Platform) -> None:
    consumer: Consumer[None] = Consumer("annotation")
    attempts: list[str] = []

    @consumer.handles(ImageIngested)
    async def on_image(ctx: MessageContext[None], event: ImageIngested) -> None:
        attempts.append(event.project)
        if event.project == "gone":
            raise NotFound("no project named gone")
        raise NotYetAvailable("the model version is not registered yet")

    handle = consumer.bind(platform)[ImageIngested.TYPE]
    gone = image_ingested("gone", 4)
    with pytest.raises(PermanentFailure, match="not-found: no project named gone"):
        await handle(envelope_for(gone, source="ingest"), gone)
    later = image_ingested("later", 5)
    with pytest.raises(NotYetAvailable):
        await handle(envelope_for(later, source="ingest"), later)
    # A handler that raised claimed nothing: the retry will run it again.
    assert await _count(platform, inbox) == 0


def test_a_message_type_is_handled_once_per_consumer() -> None:
    consumer: Consumer[None] = Consumer("annotation")

    @consumer.handles(ImageIngested)
    async def first(ctx: MessageContext[None], event: ImageIngested) -> None: ...

    with pytest.raises(ValueError, match="twice"):

        @consumer.handles(ImageIngested)
        async def second(ctx: MessageContext[None], event: ImageIngested) -> None: ...


def test_resources_are_built_once_per_bind() -> None:
    built: list[object] = []

    def resources(platform: object) -> list[object]:
        built.append(platform)
        return built

    consumer: Consumer[list[object]] = Consumer("query", resources=resources)

    @consumer.handles(ImageIngested)
    async def on_image(ctx: MessageContext[list[object]], event: ImageIngested) -> None: ...

    consumer.bind(None)  # type: ignore[arg-type]
    assert built == [None]


def test_a_refusal_is_named_in_one_line() -> None:
    class SelectionNotFound(NotFound, code="selection-not-found"): ...

    error = SelectionNotFound("no selection 1")
    assert (error.status, error.code, error.permanent, error.message) == (
        404,
        "selection-not-found",
        True,
        "no selection 1",
    )
    assert NotFound.code == "not-found"
