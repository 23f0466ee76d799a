"""Bus messages the query worker consumes, each registered with its type: one use case per message."""

from __future__ import annotations

import logging
from typing import Any

from medal.model.committees import committees_of
from medal.unit_of_work import Consumer, MessageContext
from proto.loop import ModelTrained, RoundCompleted, ScorePoolShard
from services.query import rounds, service
from services.query.service import QueryContext

log = logging.getLogger("medal.query")

#: One committee cache per process: a model version's committee is loaded once for all its shards.
consumer = Consumer("query", resources=committees_of)


@consumer.handles(RoundCompleted)
async def on_round_completed(ctx: MessageContext[Any], event: RoundCompleted) -> None:
    recorded = await rounds.record_round(ctx, event)
    log.debug("round %s attempt %d %s", event.round_id, event.attempt, "recorded" if recorded else "was known")


@consumer.handles(ModelTrained)
async def on_model_trained(ctx: MessageContext[Any], event: ModelTrained) -> None:
    shards = await service.start_run(ctx, event)
    log.debug("model version %s: %d pool shards queued", event.model_version_id, shards)


@consumer.handles(ScorePoolShard)
async def on_score_pool_shard(ctx: QueryContext, command: ScorePoolShard) -> None:
    scored = await service.score_shard(ctx, command)
    log.debug("shard %d of %s %s", command.shard_index, command.model_version_id, "scored" if scored else "was done")
