"""Bus messages the inference worker consumes, each registered with its type: one use case per message."""

from __future__ import annotations

import logging
from typing import Any

from medal.model.committees import committees_of
from medal.unit_of_work import Consumer, MessageContext
from proto import ImageIngested
from proto.loop import AutoLabel, ModelPromoted, ModelTrained
from services.inference import models, service
from services.inference.service import InferenceContext

log = logging.getLogger("medal.inference")

#: One committee cache per process (shared with the predict route): a committee is loaded once.
consumer = Consumer("inference", resources=committees_of)


@consumer.handles(ImageIngested)
async def on_image_ingested(ctx: MessageContext[Any], event: ImageIngested) -> None:
    await service.record_image(ctx, event)


@consumer.handles(ModelTrained)
async def on_model_trained(ctx: MessageContext[Any], event: ModelTrained) -> None:
    recorded = await models.record_model(ctx, event)
    log.debug("model version %s %s", event.model_version_id, "recorded" if recorded else "already known")


@consumer.handles(ModelPromoted)
async def on_model_promoted(ctx: MessageContext[Any], event: ModelPromoted) -> None:
    applied = await models.promote(ctx, event)
    log.debug("model version %s %s", event.model_version_id, "is current" if applied else "was overtaken")


@consumer.handles(AutoLabel)
async def on_autolabel(ctx: InferenceContext, command: AutoLabel) -> None:
    stored = await service.autolabel_shard(ctx, command)
    log.debug("auto-label shard %d of job %s %s", command.shard_index, command.job_id, stored and "stored")
