"""Bus messages the query worker consumes: parse, call one use case."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from medal.bus import Handler, PermanentFailure
from medal.model.committees import CommitteeCache
from medal.platform import Platform
from proto import Envelope, Message
from proto.loop import ModelTrained, ScorePoolShard
from services.query import service

log = logging.getLogger("medal.query")


def handlers(platform: Platform) -> Mapping[str, Handler]:
    # One cache per worker: a model version's committee is loaded once for all its shards.
    committees = CommitteeCache(lambda key: platform.store.get(key))

    async def on_model_trained(envelope: Envelope, message: Message) -> None:
        if not isinstance(message, ModelTrained):
            raise PermanentFailure(f"expected {ModelTrained.TYPE}")
        shards = await service.start_run(platform, envelope, message)
        log.debug("model version %s: %d pool shards queued", message.model_version_id, shards)

    async def on_score_pool_shard(envelope: Envelope, message: Message) -> None:
        if not isinstance(message, ScorePoolShard):
            raise PermanentFailure(f"expected {ScorePoolShard.TYPE}")
        scored = await service.score_shard(platform, committees, envelope, message)
        log.debug(
            "shard %d of %s %s", message.shard_index, message.model_version_id, "scored" if scored else "was done"
        )

    return {ModelTrained.TYPE: on_model_trained, ScorePoolShard.TYPE: on_score_pool_shard}
