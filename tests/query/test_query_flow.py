"""Query end to end in embedded mode: round.completed.v1 + model.trained.v2 → shards → scores → one
selection → batch.selected.v1."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping

import httpx
import pytest
from sqlalchemy import func, select

from medal.bus import Handler, PermanentFailure
from medal.db.schema import query as tables
from medal.db.schema.messaging import outbox
from medal.domain_errors import NotYetAvailable
from medal.platform import Platform
from proto import Message
from proto.envelope import Envelope, envelope_for
from proto.loop import BatchSelected, ModelTrained, PoolItem, RoundCompleted, ScorePoolShard
from services.query import audit
from services.query.handlers import consumer
from services.query.main import create_app
from tests.committee_helpers import (
    TrainedRound,
    model_trained,
    outbox_messages,
    round_completed,
    store_images,
    trained_round,
)


async def count(platform: Platform, table: object) -> int:
    async with platform.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def deliver(handle: Mapping[str, Handler], message: Message, source: str = "trainer") -> Envelope:
    """Deliver ``message`` once under a new message id, as the bus would."""
    envelope = envelope_for(message, source=source)
    await handle[message.TYPE](envelope, message)
    return envelope


async def start_round(platform: Platform, handle: Mapping[str, Handler], loop: TrainedRound) -> Envelope:
    """The round's round.completed.v1 from annotation, then its model.trained.v2 from the trainer."""
    await deliver(handle, loop.completed, source="annotation")
    return await deliver(handle, loop.trained)


async def score_all(platform: Platform, handle: Mapping[str, Handler]) -> None:
    for delivery in await outbox_messages(platform, ScorePoolShard.TYPE):
        await handle[ScorePoolShard.TYPE](*delivery)


async def test_one_selection_per_model_version_even_when_messages_come_twice(platform: Platform) -> None:
    items = store_images(platform, 65)
    loop = trained_round(platform, items)
    event = loop.trained
    handle = consumer.bind(platform)
    trained = await start_round(platform, handle, loop)

    shards = await outbox_messages(platform, ScorePoolShard.TYPE)
    assert [len(payload.items) for _, payload in shards] == [33, 32]  # type: ignore[attr-defined]
    await handle[ModelTrained.TYPE](trained, event)  # redelivered: no second run, no more shards
    await deliver(handle, event)  # same model version under another message id
    await deliver(handle, loop.completed, source="annotation")  # the round again: a repeat
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

    (summary,) = await audit.list_selections(platform, "chest")
    record = await audit.get_selection(platform, summary.id)
    assert record.id == str(batch.selection_id) and record.chosen == [str(i) for i in batch.chosen]
    assert len(record.candidates) == 6 and set(record.chosen) <= {c.image_id for c in record.candidates}
    replay = await audit.replay_selection(platform, record.id)
    assert replay.matches and replay.recomputed_chosen == record.chosen


async def test_model_trained_before_its_round_is_retried_then_scored(any_platform: Platform) -> None:
    platform = any_platform
    items = store_images(platform, 8)
    loop = trained_round(platform, items, strategy="uncertainty")
    handle = consumer.bind(platform)
    early = envelope_for(loop.trained, source="trainer")
    with pytest.raises(NotYetAvailable) as refused:  # not permanent: the bus retries it with back-off
        await handle[ModelTrained.TYPE](early, loop.trained)
    assert refused.value.code == "round-not-recorded"
    assert await count(platform, tables.runs) == 0
    assert await outbox_messages(platform, ScorePoolShard.TYPE) == []

    await deliver(handle, loop.completed, source="annotation")
    await handle[ModelTrained.TYPE](early, loop.trained)  # the retry: same message id, now it is known
    await handle[ModelTrained.TYPE](early, loop.trained)  # and once more: handled already
    assert len(await outbox_messages(platform, ScorePoolShard.TYPE)) == 1
    await score_all(platform, handle)
    ((_, batch),) = await outbox_messages(platform, BatchSelected.TYPE)
    assert isinstance(batch, BatchSelected) and batch.model_version_id == loop.trained.model_version_id
    (run,) = await audit.list_runs(platform, "chest")
    assert (run.pool_size, run.strategy, run.shards_done) == (8, "uncertainty", 1)


async def test_a_retried_round_replaces_the_pool_of_the_failed_attempt(any_platform: Platform) -> None:
    platform = any_platform
    handle = consumer.bind(platform)
    first_pool, retried_pool = store_images(platform, 5, seed=1), store_images(platform, 7, seed=2)
    failed = round_completed(platform, first_pool, "random")
    retry = round_completed(platform, retried_pool, "entropy", round_id=failed.round_id, attempt=2)
    await deliver(handle, failed, source="annotation")
    await deliver(handle, retry, source="annotation")
    await deliver(handle, failed, source="annotation")  # the older attempt again (a late copy): a repeat

    async with platform.db.connect() as conn:
        (row,) = (await conn.execute(select(tables.rounds))).all()
    assert (row.attempt, row.pool_key, row.selection["strategy"]) == (2, retry.pool_key, "entropy")

    trained = model_trained(platform, 1, round_id=failed.round_id)
    await deliver(handle, trained)
    await score_all(platform, handle)
    (record,) = await audit.list_selections(platform, "chest")
    assert (record.pool_size, record.strategy) == (7, "entropy")
    chosen = set(record.chosen)
    assert chosen <= {str(i.image_id) for i in retried_pool}


async def test_shards_finishing_together_select_exactly_once(any_platform: Platform) -> None:
    platform = any_platform
    handle = consumer.bind(platform)
    await start_round(platform, handle, trained_round(platform, store_images(platform, 65), strategy="bald"))
    shards = await outbox_messages(platform, ScorePoolShard.TYPE)
    # Both shards at once, and the last one twice under another id (two workers holding it).
    duplicate = (envelope_for(shards[1][1], source="query"), shards[1][1])
    await asyncio.gather(*(handle[ScorePoolShard.TYPE](*delivery) for delivery in [*shards, duplicate]))
    assert await count(platform, tables.selections) == 1
    assert len(await outbox_messages(platform, BatchSelected.TYPE)) == 1
    (summary,) = await audit.list_selections(platform, "chest")
    record = await audit.get_selection(platform, summary.id)
    assert record.strategy == "bald" and all(c.bald is not None for c in record.candidates)


async def test_selections_over_rest(platform: Platform) -> None:
    loop = trained_round(platform, store_images(platform, 8), strategy="random")
    handle = consumer.bind(platform)
    await start_round(platform, handle, loop)
    await score_all(platform, handle)

    app = create_app()
    app.state.platform = platform
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://query") as client:
        (run,) = (await client.get("/v1/projects/chest/runs")).json()
        assert (run["shards_done"], run["shard_count"], run["pool_size"]) == (1, 1, 8)
        listed = (await client.get("/v1/projects/chest/selections")).json()
        assert run["selection_id"] == listed[0]["id"] and run["strategy"] == "random"
        assert len(listed) == 1 and listed[0]["model_version_id"] == str(loop.trained.model_version_id)
        assert listed[0]["strategy"] == "random" and len(listed[0]["chosen"]) == 3
        detail = (await client.get(f"/v1/selections/{listed[0]['id']}")).json()
        assert [c["rank"] for c in detail["candidates"]] == list(range(1, 7))
        assert sum(c["chosen"] for c in detail["candidates"]) == 3 and detail["version"] == 1
        assert len(detail["backlog"]) == 5 and set(detail["backlog"]).isdisjoint(detail["chosen"])
        replay = await client.post(f"/v1/selections/{listed[0]['id']}/replay")
        assert replay.status_code == 200 and replay.json()["matches"] is True
        missing = await client.get(f"/v1/selections/{uuid.uuid4()}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "selection-not-found"
        malformed = await client.get("/v1/selections/not-an-id")
        assert malformed.status_code == 422 and malformed.json()["error"]["code"] == "invalid-request"
        assert (await client.get("/v1/projects/other/selections")).json() == []
        assert (await client.get("/v1/projects/Not_A_Project/runs")).status_code == 422
    assert await count(platform, outbox) == 2  # one shard command, one batch.selected.v1


async def test_missing_or_unreadable_pool_images_are_left_out_not_blocking(platform: Platform) -> None:
    good = store_images(platform, 5)
    garbage = platform.store.put_content("images", b"not a png", "png", "image/png")
    bad = [
        PoolItem(image_id=uuid.uuid4(), image_key="images/00/missing.png"),
        PoolItem(image_id=uuid.uuid4(), image_key=garbage.key),
    ]
    handle = consumer.bind(platform)
    await start_round(platform, handle, trained_round(platform, [*good[:2], *bad, *good[2:]]))
    await score_all(platform, handle)
    assert await count(platform, tables.scores) == 5
    (summary,) = await audit.list_selections(platform, "chest")
    record = await audit.get_selection(platform, summary.id)
    assert record.pool_size == 5 and len(record.chosen) == 3
    assert set(record.chosen) | set(record.backlog) == {str(i.image_id) for i in good}
    assert (await audit.replay_selection(platform, record.id)).matches


async def test_a_missing_pool_manifest_is_dead_lettered_at_once(platform: Platform) -> None:
    handle = consumer.bind(platform)
    completed = round_completed(platform, store_images(platform, 2))
    lost = completed.model_copy(update={"pool_key": "manifests/00/lost.json"})
    await deliver(handle, lost, source="annotation")
    trained = model_trained(platform, 1, round_id=completed.round_id)
    with pytest.raises(PermanentFailure, match="pool-manifest-missing"):
        await deliver(handle, trained)
    assert await count(platform, tables.runs) == 0
    stray = ScorePoolShard(
        project="chest", model_version_id=uuid.uuid4(), shard_index=0, shard_count=1, items=[*store_images(platform, 1)]
    )
    with pytest.raises(PermanentFailure, match="run-not-found"):
        await deliver(handle, stray, source="query")
    assert RoundCompleted.TYPE in consumer.message_types
