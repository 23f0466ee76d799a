"""Bus messages the inference worker consumes: parse, call one use case."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from medal.bus import Handler, PermanentFailure
from medal.model.committees import CommitteeCache
from medal.platform import Platform
from proto import Envelope, ImageIngested, Message
from proto.loop import AutoLabel, ModelPromoted, ModelTrained
from services.inference import service

log = logging.getLogger("medal.inference")


def handlers(platform: Platform) -> Mapping[str, Handler]:
    # One cache per worker: a model version's committee is loaded once for all its shards.
    committees = CommitteeCache(lambda key: platform.store.get(key))

    async def on_image_ingested(envelope: Envelope, message: Message) -> None:
        if not isinstance(message, ImageIngested):
            raise PermanentFailure(f"expected {ImageIngested.TYPE}")
        await service.record_image(platform, envelope, message)

    async def on_model_trained(envelope: Envelope, message: Message) -> None:
        if not isinstance(message, ModelTrained):
            raise PermanentFailure(f"expected {ModelTrained.TYPE}")
        created = await service.record_model(platform, envelope, message)
        log.debug("model version %s %s", message.model_version_id, "registered" if created else "already known")

    async def on_model_promoted(envelope: Envelope, message: Message) -> None:
        if not isinstance(message, ModelPromoted):
            raise PermanentFailure(f"expected {ModelPromoted.TYPE}")
        await service.promote(platform, envelope, message)

    async def on_autolabel(envelope: Envelope, message: Message) -> None:
        if not isinstance(message, AutoLabel):
            raise PermanentFailure(f"expected {AutoLabel.TYPE}")
        stored = await service.autolabel_shard(platform, committees, envelope, message)
        log.debug("auto-label shard %d of job %s %s", message.shard_index, message.job_id, stored and "stored")

    return {
        ImageIngested.TYPE: on_image_ingested,
        ModelTrained.TYPE: on_model_trained,
        ModelPromoted.TYPE: on_model_promoted,
        AutoLabel.TYPE: on_autolabel,
    }
