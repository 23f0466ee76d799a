"""Query end to end in embedded mode: model.trained.v1 → shards → scores → one selection → batch.selected.v1."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from medal.db.schema import query as tables
from medal.db.schema.messaging import outbox
from medal.platform import Platform
from proto.envelope import envelope_for
from proto.loop import BatchSelected, ModelTrained, PoolItem, ScorePoolShard
from services.query import audit
from services.query.handlers import handlers
from services.query.main import create_app
from tests.committee_helpers import build_platform, close, model_trained, outbox_messages, store_images


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    built = await build_platform(tmp_path, "query")
    yield built
    await close(built)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def any_platform(database_url: str | None, tmp_path: Path) -> AsyncIterator[Platform]:
    built = await build_platform(tmp_path, "query", database_url=database_url)
    yield built
    await close(built)


async def count(platform: Platform, table: object) -> int:
    async with platform.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_one_selection_per_model_version_even_when_messages_come_twice(platform: Platform) -> None:
    items = store_images(platform, 65)
    event = model_trained(platform, items)
    handle = handlers(platform)
    trained = envelope_for(event, source="trainer")
    await handle[ModelTrained.TYPE](trained, event)

    shards = await outbox_messages(platform, ScorePoolShard.TYPE)
    assert [len(payload.items) for _, payload in shards] == [33, 32]  # type: ignore[attr-defined]
    await handle[ModelTrained.TYPE](trained, event)  # redelivered: no second run, no more shards
    again = envelope_for(event, source="trainer")  # same model version under another message id
    await handle[ModelTrained.TYPE](again, event)
    assert len(await outbox_messages(platform, ScorePoolShard.TYPE)) == 2

    await handle[ScorePoolShard.TYPE](*shards[0])
    assert await outbox_messages(platform, BatchSelected.TYPE) == []  # one shard is still out
    await handle[ScorePoolShard.TYPE](*shards[1])
    for delivery in shards:  # redelivered shards change nothing
        await handle[ScorePoolShard.TYPE](*delivery)

    assert await count(platform, tables.scores) == 65
    assert await count(platform, tables.selections) == 1
    selected = await outbox_messages(platform, BatchSelected.TYPE)
    assert len(selected) == 1
    envelope, batch = selected[0]
    assert isinstance(batch, BatchSelected) and batch.model_version_id == event.model_version_id
    assert len(batch.chosen) == 3 and len(set(batch.chosen)) == 3
    assert set(batch.chosen).isdisjoint(batch.backlog) and len(batch.backlog) == 62
    assert {i.image_id for i in items} == set(batch.chosen) | set(batch.backlog)
    assert envelope.correlation_id == trained.correlation_id

    record = (await audit.list_selections(platform, "chest"))[0]
    assert record.id == str(batch.selection_id) and record.chosen == [str(i) for i in batch.chosen]
    assert len(record.candidates) == 6 and set(record.chosen) <= set(record.candidates)
    replay = await audit.replay_selection(platform, record.id)
    assert replay.matches and replay.recomputed_chosen == record.chosen


async def test_shards_finishing_together_select_exactly_once(any_platform: Platform) -> None:
    platform = any_platform
    event = model_trained(platform, store_images(platform, 65), strategy="bald")
    handle = handlers(platform)
    await handle[ModelTrained.TYPE](envelope_for(event, source="trainer"), event)
    shards = await outbox_messages(platform, ScorePoolShard.TYPE)
    # Both shards at once, and the last one twice under another id (two workers holding it).
    duplicate = (envelope_for(shards[1][1], source="query"), shards[1][1])
    await asyncio.gather(*(handle[ScorePoolShard.TYPE](*delivery) for delivery in [*shards, duplicate]))
    assert await count(platform, tables.selections) == 1
    assert len(await outbox_messages(platform, BatchSelected.TYPE)) == 1
    record = (await audit.list_selections(platform, "chest"))[0]
    assert record.strategy == "bald" and all(s["bald"] is not None for s in record.scores)


async def test_selections_over_rest(platform: Platform) -> None:
    event = model_trained(platform, store_images(platform, 8), strategy="random")
    handle = handlers(platform)
    await handle[ModelTrained.TYPE](envelope_for(event, source="trainer"), event)
    for delivery in await outbox_messages(platform, ScorePoolShard.TYPE):
        await handle[ScorePoolShard.TYPE](*delivery)

    app = create_app()
    app.state.platform = platform
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as client:
        (run,) = (await client.get("/v1/projects/chest/runs")).json()
        assert (run["shards_done"], run["shard_count"], run["pool_size"]) == (1, 1, 8)
        listed = (await client.get("/v1/projects/chest/selections")).json()
        assert run["selection_id"] == listed[0]["id"] and run["strategy"] == "random"
        assert len(listed) == 1 and listed[0]["model_version_id"] == str(event.model_version_id)
        assert listed[0]["strategy"] == "random" and len(listed[0]["chosen"]) == 3
        detail = (await client.get(f"/v1/selections/{listed[0]['id']}")).json()
        assert [c["rank"] for c in detail["candidates"]] == list(range(1, 7))
        assert sum(c["chosen"] for c in detail["candidates"]) == 3 and detail["version"] == 1
        replay = await client.post(f"/v1/selections/{listed[0]['id']}/replay")
        assert replay.status_code == 200 and replay.json()["matches"] is True
        missing = await client.get(f"/v1/selections/{uuid.uuid4()}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "selection-not-found"
        assert (await client.get("/v1/projects/other/selections")).json() == []
    assert await count(platform, outbox) == 2  # one shard command, one batch.selected.v1


async def test_missing_or_unreadable_pool_images_are_left_out_not_blocking(platform: Platform) -> None:
    good = store_images(platform, 5)
    garbage = platform.store.put_content("images", b"not a png", "png", "image/png")
    bad = [
        PoolItem(image_id=uuid.uuid4(), image_key="images/00/missing.png"),
        PoolItem(image_id=uuid.uuid4(), image_key=garbage.key),
    ]
    event = model_trained(platform, [*good[:2], *bad, *good[2:]])
    handle = handlers(platform)
    await handle[ModelTrained.TYPE](envelope_for(event, source="trainer"), event)
    for delivery in await outbox_messages(platform, ScorePoolShard.TYPE):
        await handle[ScorePoolShard.TYPE](*delivery)
    assert await count(platform, tables.scores) == 5
    (record,) = await audit.list_selections(platform, "chest")
    assert record.pool_size == 5 and len(record.chosen) == 3
    assert set(record.chosen) | set(record.backlog) == {str(i.image_id) for i in good}
    assert (await audit.replay_selection(platform, record.id)).matches
