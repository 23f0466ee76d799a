"""Inference use cases: know images, auto-label shards, predict one image (model versions: models.py).

Idempotency: images and models are keyed by their ids, auto-label shards by (job, shard index); every
consumed message id goes to the inbox in the transaction of its effects (the unit of work), and
predictions.stored.v1 has an id derived from (job, shard), so a redelivered shard neither stores a
second record nor a second event. Masks are content-addressed objects: storing one again is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from sqlalchemy import select

from medal.access import Caller, audit
from medal.db.engine import insert_ignore
from medal.db.schema import inference as tables
from medal.db.schema.base import utcnow
from medal.model.committees import CommitteeCache
from medal.platform import Platform
from medal.storage import ObjectNotFound
from medal.unit_of_work import MessageContext
from proto import ImageIngested
from proto.loop import AutoLabel, Prediction, PredictionsStored, TrainingSpec
from services.inference.errors import ImageNotFound, NothingReadable
from services.inference.models import model_for_prediction
from services.inference.prediction import PredictedMask, predict_masks, predict_stored
from services.inference.schemas import PredictionOut

log = logging.getLogger("medal.inference")

NAMESPACE = uuid.UUID("9d4e2c61-7a3b-4f08-b5c1-2e8f6a0d3b74")
#: What an inference handler gets: the process's committee cache is its resource.
InferenceContext = MessageContext[CommitteeCache]


def predictions_message_id(job_id: uuid.UUID | str, shard_index: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"predictions/{job_id}/{shard_index}")


async def record_image(ctx: MessageContext[Any], event: ImageIngested) -> bool:
    """Keep where an ingested image's training PNG is (for predict). False for a repeat or quarantine."""
    if event.quarantined:
        return False
    row = {
        "id": str(event.image_id),
        "project": event.project,
        "training_key": event.training_key,
        "width": event.width,
        "height": event.height,
        "created_at": utcnow(),
    }
    async with ctx.unit_of_work() as uow:
        return await insert_ignore(uow.conn, tables.images, row, ["id"])


def _store_masks(platform: Platform, masks: list[tuple[uuid.UUID, PredictedMask]]) -> list[Prediction]:
    predictions = []
    for image_id, mask in masks:
        stored = platform.store.put_content("predictions", mask.png, "png", "image/png")
        predictions.append(
            Prediction(image_id=image_id, mask_key=stored.key, mask_sha256=stored.sha256, confidence=mask.confidence)
        )
    return predictions


async def autolabel_shard(ctx: InferenceContext, command: AutoLabel) -> bool:
    """Predict and store the masks of one auto-label shard, then queue predictions.stored.v1.

    False when the shard was already recorded (a redelivery).
    """
    a = tables.autolabel_shards
    key = (a.c.job_id == str(command.job_id), a.c.shard_index == command.shard_index)
    async with ctx.platform.db.connect() as conn:
        if (await conn.execute(select(a.c.job_id).where(*key))).first() is not None:
            return False
    masks = await asyncio.to_thread(
        predict_stored,
        ctx.resources,
        str(command.model_version_id),
        command.member_keys,
        command.training.image_size,
        [item.image_key for item in command.items],
        [item.offset for item in command.items],
    )
    kept = [(item.image_id, mask) for item, mask in zip(command.items, masks, strict=True) if mask is not None]
    if not kept:
        raise NothingReadable(f"no image of auto-label shard {command.shard_index} of job {command.job_id} is readable")
    predictions = await asyncio.to_thread(_store_masks, ctx.platform, kept)
    event = PredictionsStored(
        project=command.project,
        job_id=command.job_id,
        model_version_id=command.model_version_id,
        shard_index=command.shard_index,
        shard_count=command.shard_count,
        predictions=predictions,
    )
    row = {**event.model_dump(mode="json"), "created_at": utcnow()}  # the shard's record is the event it sends
    async with ctx.unit_of_work() as uow:
        if not await insert_ignore(uow.conn, a, row, ["job_id", "shard_index"]):
            return False
        await uow.emit(event, message_id=predictions_message_id(command.job_id, command.shard_index))
    return True


async def predict_image(
    platform: Platform,
    committees: CommitteeCache,
    project: str,
    image_id: str,
    model_version_id: str | None,
    caller: Caller | None = None,
) -> PredictionOut:
    """Predict one image of ``project`` with a chosen model version, or the project's current one.

    With ``caller``: the suggestion shown to that person is recorded (``pre-annotated``, with its model)."""
    i = tables.images
    async with platform.db.connect() as conn:
        image = (await conn.execute(select(i).where(i.c.id == image_id, i.c.project == project))).first()
        if image is None:
            raise ImageNotFound(f"no image {image_id} in project {project}")
        model = await model_for_prediction(conn, project, model_version_id)
    try:
        png = await asyncio.to_thread(platform.store.get, image.training_key)
    except ObjectNotFound:
        raise ImageNotFound(f"no image {image_id} in project {project}") from None
    predicted = await _predict_png(committees, model, png)
    if caller is not None:
        details = {"model_version_id": str(model.id), "version": int(model.version)}
        async with platform.db.begin() as conn:
            await audit.record(conn, caller, "pre-annotated", project, "image", image_id, details)
    return predicted


async def predict_session(
    platform: Platform,
    committees: CommitteeCache,
    project: str,
    session_key: str,
    model_version_id: str | None,
) -> PredictionOut:
    """Predict a MONAI Label session's image (uploaded for inference only, never ingested or stored here)."""
    if not session_key.startswith(f"monailabel-sessions/{project}/"):
        raise ImageNotFound(f"no session image {session_key} in project {project}")
    async with platform.db.connect() as conn:
        model = await model_for_prediction(conn, project, model_version_id)
    try:
        png = await asyncio.to_thread(platform.store.get, session_key)
    except ObjectNotFound:
        raise ImageNotFound(f"no session image {session_key} in project {project}") from None
    return await _predict_png(committees, model, png)


async def _predict_png(committees: CommitteeCache, model: Any, png: bytes) -> PredictionOut:
    training = TrainingSpec.model_validate(model.training)

    def run() -> PredictedMask:
        members = committees.get(model.id, list(model.member_keys))
        with committees.busy:
            # Offset 0: preprocessing standardises each image, which an offset does not change.
            return predict_masks(members, [png], [0], training.image_size, committees.compute)[0]

    return PredictionOut.of(model, await asyncio.to_thread(run))
