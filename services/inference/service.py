"""Inference use cases: know images and model versions, auto-label shards, predict one image.

Idempotency: images and models are keyed by their ids, auto-label shards by (job, shard index); every
consumed message id goes to the inbox in the transaction of its effects, and predictions.stored.v1 has
an id derived from (job, shard), so a redelivered shard neither stores a second record nor a second
event. Masks are content-addressed objects: storing one again is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from medal.bus import PermanentFailure
from medal.db.engine import insert_ignore
from medal.db.messaging import add_to_outbox, claim_message
from medal.db.schema import inference as tables
from medal.db.schema.base import utcnow
from medal.model.committees import CommitteeCache
from medal.platform import Platform
from medal.storage import ObjectNotFound
from proto import Envelope, ImageIngested
from proto.envelope import envelope_for
from proto.loop import AutoLabel, ModelPromoted, ModelTrained, Prediction, PredictionsStored, TrainingSpec
from services.inference.prediction import PredictedMask, predict_masks, predict_stored

log = logging.getLogger("medal.inference")

CONSUMER = "inference"
SOURCE = "inference"
NAMESPACE = uuid.UUID("9d4e2c61-7a3b-4f08-b5c1-2e8f6a0d3b74")


class ImageNotFound(LookupError):
    pass


class ModelNotFound(LookupError):
    pass


class NoModel(LookupError):
    """The project has no model version yet."""


class UnknownModelVersion(RuntimeError):
    """A promotion arrived before the model version it names: retried until model.trained.v1 is in."""


def predictions_message_id(job_id: uuid.UUID | str, shard_index: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"predictions/{job_id}/{shard_index}")


async def record_image(platform: Platform, envelope: Envelope, event: ImageIngested) -> bool:
    """Keep where an ingested image's training PNG is (for predict). False for a repeat or quarantine."""
    async with platform.db.begin() as conn:
        if not await claim_message(conn, CONSUMER, str(envelope.id)) or event.quarantined:
            return False
        return await insert_ignore(
            conn,
            tables.images,
            {
                "id": str(event.image_id),
                "project": event.project,
                "training_key": event.training_key,
                "width": event.width,
                "height": event.height,
                "created_at": utcnow(),
            },
            ["id"],
        )


async def record_model(platform: Platform, envelope: Envelope, event: ModelTrained) -> bool:
    """Register a model version; a project's first one becomes current. False for a repeat."""
    m = tables.models
    async with platform.db.begin() as conn:
        if not await claim_message(conn, CONSUMER, str(envelope.id)):
            return False
        has_current = (
            await conn.execute(select(m.c.id).where(m.c.project == event.project, m.c.current.is_(True)).limit(1))
        ).first() is not None
        return await insert_ignore(
            conn,
            m,
            {
                "id": str(event.model_version_id),
                "project": event.project,
                "version": event.version,
                "member_keys": list(event.member_keys),
                "training": event.training.model_dump(mode="json"),
                "current": not has_current,
                "created_at": utcnow(),
            },
            ["id"],
        )


async def promote(platform: Platform, envelope: Envelope, event: ModelPromoted) -> bool:
    """Make a model version its project's current one. False for a repeat."""
    m = tables.models
    version_id = str(event.model_version_id)
    async with platform.db.begin() as conn:
        if not await claim_message(conn, CONSUMER, str(envelope.id)):
            return False
        known = (await conn.execute(select(m.c.project).where(m.c.id == version_id))).scalar()
        if known is None:
            raise UnknownModelVersion(f"model version {version_id} is not registered yet")
        await conn.execute(update(m).where(m.c.project == known, m.c.id != version_id).values(current=False))
        await conn.execute(update(m).where(m.c.id == version_id).values(current=True))
    return True


def _store_masks(platform: Platform, masks: list[tuple[uuid.UUID, PredictedMask]]) -> list[Prediction]:
    predictions = []
    for image_id, mask in masks:
        stored = platform.store.put_content("predictions", mask.png, "png", "image/png")
        predictions.append(
            Prediction(image_id=image_id, mask_key=stored.key, mask_sha256=stored.sha256, confidence=mask.confidence)
        )
    return predictions


async def autolabel_shard(
    platform: Platform, committees: CommitteeCache, envelope: Envelope, command: AutoLabel
) -> bool:
    """Predict and store the masks of one auto-label shard, then queue predictions.stored.v1.

    False when the shard was already recorded (a redelivery).
    """
    a = tables.autolabel_shards
    key = (a.c.job_id == str(command.job_id), a.c.shard_index == command.shard_index)
    async with platform.db.connect() as conn:
        if (await conn.execute(select(a.c.job_id).where(*key))).first() is not None:
            return False
    masks = await asyncio.to_thread(
        predict_stored,
        committees,
        str(command.model_version_id),
        command.member_keys,
        command.training.image_size,
        [item.image_key for item in command.items],
        [item.offset for item in command.items],
    )
    kept = [(item.image_id, mask) for item, mask in zip(command.items, masks, strict=True) if mask is not None]
    if not kept:
        raise PermanentFailure(
            f"no image of auto-label shard {command.shard_index} of job {command.job_id} is readable"
        )
    predictions = await asyncio.to_thread(_store_masks, platform, kept)
    async with platform.db.begin() as conn:
        if not await claim_message(conn, CONSUMER, str(envelope.id)):
            return False
        created = await insert_ignore(
            conn,
            a,
            {
                "job_id": str(command.job_id),
                "shard_index": command.shard_index,
                "project": command.project,
                "model_version_id": str(command.model_version_id),
                "shard_count": command.shard_count,
                "predictions": [p.model_dump(mode="json") for p in predictions],
                "created_at": utcnow(),
            },
            ["job_id", "shard_index"],
        )
        if not created:
            return False
        event = PredictionsStored(
            project=command.project,
            job_id=command.job_id,
            model_version_id=command.model_version_id,
            shard_index=command.shard_index,
            shard_count=command.shard_count,
            predictions=predictions,
        )
        await add_to_outbox(
            conn,
            envelope_for(
                event,
                source=SOURCE,
                correlation_id=envelope.correlation_id,
                message_id=predictions_message_id(command.job_id, command.shard_index),
            ),
        )
    platform.relay.notify()
    return True


@dataclass(frozen=True)
class ImagePrediction:
    """A pre-annotation for the UI: one image's predicted mask."""

    model_version_id: str
    version: int
    confidence: float
    width: int
    height: int
    mask_png: bytes


async def _model_row(platform: Platform, project: str, model_version_id: str | None) -> Any:
    m = tables.models
    query = select(m).where(m.c.project == project)
    if model_version_id is None:
        query = query.where(m.c.current.is_(True)).order_by(m.c.version.desc()).limit(1)
    else:
        query = query.where(m.c.id == model_version_id)
    async with platform.db.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        raise NoModel(project) if model_version_id is None else ModelNotFound(model_version_id)
    return row


async def predict_image(
    platform: Platform, committees: CommitteeCache, project: str, image_id: str, model_version_id: str | None
) -> ImagePrediction:
    """Predict one image of ``project`` with a chosen model version, or the project's current one."""
    i = tables.images
    async with platform.db.connect() as conn:
        image = (await conn.execute(select(i).where(i.c.id == image_id, i.c.project == project))).first()
    if image is None:
        raise ImageNotFound(image_id)
    model = await _model_row(platform, project, model_version_id)
    training = TrainingSpec.model_validate(model.training)
    try:
        png = await asyncio.to_thread(platform.store.get, image.training_key)
    except ObjectNotFound:
        raise ImageNotFound(image_id) from None

    def run() -> PredictedMask:
        members = committees.get(model.id, list(model.member_keys))
        with committees.busy:
            # Offset 0: preprocessing standardises each image, which an offset does not change.
            return predict_masks(members, [png], [0], training.image_size, committees.compute)[0]

    mask = await asyncio.to_thread(run)
    return ImagePrediction(model.id, model.version, mask.confidence, mask.width, mask.height, mask.png)
