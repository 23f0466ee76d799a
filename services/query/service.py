"""Query use cases: start a scoring run per model version, score shards, select when the last is in.

Idempotency: a run is keyed by its model version, a shard by (model version, shard index), a score by
(model version, image), a selection by its model version; every consumed message id goes to the inbox
in the same transaction as its effects (the unit of work), and every message queued has an id derived
from those keys. Exactly one shard transaction sees the last increment of ``shards_done`` (a row
update serialises them), and only that one selects.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.db.engine import insert_ignore
from medal.db.schema import query as tables
from medal.db.schema.base import utcnow
from medal.model.committees import CommitteeCache
from medal.platform import Platform
from medal.storage import ObjectNotFound
from medal.unit_of_work import MessageContext, UnitOfWork
from proto.loop import BatchSelected, ModelTrained, PoolItem, ScorePoolShard, SelectionSpec
from proto.manifests import Pool
from services.query.errors import PoolManifestMissing, PoolManifestUnreadable, RunNotFound
from services.query.rounds import recorded_round
from services.query.selection_runs import (
    ScoredPool,
    SelectionOutcome,
    random_seed,
    select_batch,
    shard_sizes,
    split_into_shards,
)
from services.query.shard_scoring import ShardScores, score_items

log = logging.getLogger("medal.query")

NAMESPACE = uuid.UUID("5f0c7a8e-2b1d-4e69-9a3f-7c4d2e1b8a60")
#: What a query handler gets: the process's committee cache is its resource.
QueryContext = MessageContext[CommitteeCache]


def shard_message_id(model_version_id: uuid.UUID | str, shard_index: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"score/{model_version_id}/{shard_index}")


def selection_id(model_version_id: uuid.UUID | str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"selection/{model_version_id}")


def batch_message_id(model_version_id: uuid.UUID | str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"batch-selected/{model_version_id}")


def unique_items(items: list[PoolItem]) -> list[PoolItem]:
    """The pool's items, each image once (first occurrence), manifest order kept."""
    seen: set[uuid.UUID] = set()
    kept = []
    for item in items:
        if item.image_id not in seen:
            seen.add(item.image_id)
            kept.append(item)
    return kept


async def read_pool(platform: Platform, pool_key: str) -> list[PoolItem]:
    """The unique items of a pool manifest; a missing or unreadable manifest is a permanent refusal."""
    try:
        raw = await asyncio.to_thread(platform.store.get, pool_key)
    except ObjectNotFound:
        raise PoolManifestMissing(f"pool manifest {pool_key} is missing") from None
    try:
        pool = Pool.model_validate_json(raw)
    except ValidationError:
        raise PoolManifestUnreadable(f"pool manifest {pool_key} is not a valid pool manifest") from None
    return unique_items(list(pool.items))


async def _has_run(conn: AsyncConnection, model_version_id: str) -> bool:
    r = tables.runs
    return (
        await conn.execute(select(r.c.model_version_id).where(r.c.model_version_id == model_version_id))
    ).first() is not None


async def start_run(ctx: MessageContext[Any], event: ModelTrained) -> int:
    """Record the run of a new model version with its round's pool and spec, queue its shards.

    Returns the shards queued (0 for a repeat). Raises :class:`RoundNotRecorded` (retried with
    back-off) while the round's round.completed.v1 has not been recorded.
    """
    version_id = str(event.model_version_id)
    async with ctx.platform.db.connect() as conn:
        if await _has_run(conn, version_id):
            log.info("model version %s already has a scoring run", version_id)
            return 0
        round_ = await recorded_round(conn, event.project, event.round_id)
    items = await read_pool(ctx.platform, round_.pool_key)
    shards = split_into_shards(items)
    async with ctx.unit_of_work() as uow:
        created = await insert_ignore(
            uow.conn,
            tables.runs,
            {
                "model_version_id": version_id,
                "project": event.project,
                "round_id": str(event.round_id),
                "version": event.version,
                "pool_key": round_.pool_key,
                "pool_size": len(items),
                "shard_count": len(shards),
                "shards_done": 0,
                "selection": round_.selection.model_dump(mode="json"),
                "member_keys": list(event.member_keys),
                "training": event.training.model_dump(mode="json"),
                "correlation_id": str(ctx.envelope.correlation_id),
                "created_at": utcnow(),
            },
            ["model_version_id"],
        )
        if not created:
            return 0
        for index, shard in enumerate(shards):
            await uow.conn.execute(
                insert(tables.shards).values(
                    model_version_id=version_id, shard_index=index, items=len(shard), state="queued"
                )
            )
            command = ScorePoolShard(
                project=event.project,
                model_version_id=event.model_version_id,
                shard_index=index,
                shard_count=len(shards),
                items=shard,
            )
            await uow.emit(command, message_id=shard_message_id(version_id, index))
    if not shards:
        log.warning("model version %s of %s has an empty pool: nothing to select", version_id, event.project)
    return len(shards)


async def score_shard(ctx: QueryContext, command: ScorePoolShard) -> bool:
    """Score one shard and store its scores; select when it was the last. False when already done."""
    version_id = str(command.model_version_id)
    r, s = tables.runs, tables.shards
    async with ctx.platform.db.connect() as conn:
        run = (await conn.execute(select(r).where(r.c.model_version_id == version_id))).first()
        state = (
            await conn.execute(
                select(s.c.state).where(s.c.model_version_id == version_id, s.c.shard_index == command.shard_index)
            )
        ).scalar()
    if run is None or state is None:
        raise RunNotFound(f"no scoring run for shard {command.shard_index} of model version {version_id}")
    if state == "done":
        return False
    spec = SelectionSpec.model_validate(run.selection)
    scores = await asyncio.to_thread(
        score_items,
        ctx.resources,
        version_id,
        list(run.member_keys),
        int(run.training["image_size"]),
        command.items,
        with_bald=spec.strategy == "bald",
        seed=random_seed(command.model_version_id) % 2**31,
    )
    async with ctx.unit_of_work() as uow:
        conn = uow.conn
        flipped = await conn.execute(
            update(s)
            .where(s.c.model_version_id == version_id, s.c.shard_index == command.shard_index, s.c.state == "queued")
            .values(state="done", done_at=utcnow())
        )
        if flipped.rowcount != 1:
            return False
        start = sum(shard_sizes(run.pool_size)[: command.shard_index])
        if scores.rows:
            await conn.execute(insert(tables.scores), _score_rows(version_id, start, command.items, scores))
        await conn.execute(update(r).where(r.c.model_version_id == version_id).values(shards_done=r.c.shards_done + 1))
        done = (await conn.execute(select(r.c.shards_done).where(r.c.model_version_id == version_id))).scalar_one()
        if done == run.shard_count:
            await _select_and_queue(uow, run)
    return True


def _score_rows(version_id: str, start: int, items: list[PoolItem], scores: ShardScores) -> list[dict[str, Any]]:
    return [
        {
            "model_version_id": version_id,
            "image_id": str(items[row].image_id),
            "position": start + row,
            "uncertainty": float(scores.uncertainty[index]),
            "entropy": float(scores.entropy[index]),
            "bald": None if scores.bald is None else float(scores.bald[index]),
            "descriptor": np.ascontiguousarray(scores.descriptors[index], dtype=np.float32).tobytes(),
        }
        for index, row in enumerate(scores.rows)
    ]


async def load_scored_pool(conn: AsyncConnection, model_version_id: str) -> ScoredPool:
    """Every stored score of a run, in pool-manifest order."""
    sc = tables.scores
    rows = (
        await conn.execute(select(sc).where(sc.c.model_version_id == model_version_id).order_by(sc.c.position))
    ).all()
    bald = [row.bald for row in rows]
    return ScoredPool(
        image_ids=[row.image_id for row in rows],
        uncertainty=np.array([row.uncertainty for row in rows], dtype=np.float64),
        entropy=np.array([row.entropy for row in rows], dtype=np.float64),
        bald=None if any(value is None for value in bald) else np.array(bald, dtype=np.float64),
        descriptors=np.stack([np.frombuffer(row.descriptor, dtype=np.float32) for row in rows]).astype(np.float64)
        if rows
        else np.zeros((0, 0)),
    )


def outcome_for_run(pool: ScoredPool, model_version_id: str, selection: dict[str, Any]) -> SelectionOutcome:
    """The selection a run's strategy makes from its stored scores (the same on every replay)."""
    spec = SelectionSpec.model_validate(selection)
    return select_batch(pool, spec.strategy, spec.candidates, spec.batch, seed=random_seed(uuid.UUID(model_version_id)))


async def _select_and_queue(uow: UnitOfWork, run: Any) -> None:
    conn = uow.conn
    pool = await load_scored_pool(conn, run.model_version_id)
    if not pool.image_ids:
        log.error("model version %s: no pool image could be scored; nothing selected", run.model_version_id)
        return
    outcome = outcome_for_run(pool, run.model_version_id, run.selection)
    record_id = selection_id(run.model_version_id)
    spec = SelectionSpec.model_validate(run.selection)
    created = await insert_ignore(
        conn,
        tables.selections,
        {
            "id": str(record_id),
            "model_version_id": run.model_version_id,
            "project": run.project,
            "strategy": spec.strategy,
            "candidates_k": spec.candidates,
            "batch_k": spec.batch,
            "pool_size": len(pool.image_ids),
            "candidates": outcome.candidates,
            "scores": outcome.scores,
            "chosen": outcome.chosen,
            "backlog": outcome.backlog,
            "created_at": utcnow(),
        },
        ["model_version_id"],
    )
    if not created:
        return
    event = BatchSelected(
        project=run.project,
        model_version_id=uuid.UUID(run.model_version_id),
        selection_id=record_id,
        chosen=[uuid.UUID(i) for i in outcome.chosen],
        backlog=[uuid.UUID(i) for i in outcome.backlog],
    )
    await uow.emit(
        event, message_id=batch_message_id(run.model_version_id), correlation_id=uuid.UUID(run.correlation_id)
    )
    log.info(
        "model version %s: chose %d of %d pool images", run.model_version_id, len(outcome.chosen), len(pool.image_ids)
    )
