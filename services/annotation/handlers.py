"""Bus messages the annotation service consumes: each type, one use case in one unit of work."""

from __future__ import annotations

import logging

from medal.unit_of_work import Consumer, MessageContext
from proto import (
    BatchSelected,
    ImageIngested,
    IngestJobCompleted,
    ModelPromoted,
    ModelTrained,
    PredictionsStored,
    RoundFailed,
)
from services.annotation import loop_events, retries, service

log = logging.getLogger("medal.annotation")
consumer: Consumer[None] = Consumer("annotation")


@consumer.handles(ImageIngested)
async def on_image_ingested(ctx: MessageContext[None], event: ImageIngested) -> None:
    async with ctx.unit_of_work() as uow:
        await service.record_ingested_image(uow.conn, event)


@consumer.handles(IngestJobCompleted)
async def on_ingest_job_completed(ctx: MessageContext[None], event: IngestJobCompleted) -> None:
    """Note that an ingest submission finished (its images arrive as their own events)."""
    async with ctx.unit_of_work():
        pass
    log.info(
        "ingest job %s for project %s finished: %d accepted, %d quarantined, %d duplicates, %d refused",
        event.job_id,
        event.project,
        event.accepted,
        event.quarantined,
        event.duplicates,
        event.refused,
    )


@consumer.handles(ModelTrained)
async def on_model_trained(ctx: MessageContext[None], event: ModelTrained) -> None:
    async with ctx.unit_of_work() as uow:
        await loop_events.record_model(uow.conn, event)


@consumer.handles(ModelPromoted)
async def on_model_promoted(ctx: MessageContext[None], event: ModelPromoted) -> None:
    async with ctx.unit_of_work() as uow:
        await loop_events.apply_promotion(uow, event)


@consumer.handles(RoundFailed)
async def on_round_failed(ctx: MessageContext[None], event: RoundFailed) -> None:
    async with ctx.unit_of_work() as uow:
        if await retries.record_failure(uow.conn, event):
            log.warning(
                "project %s round %d attempt %d: training failed (%s)",
                event.project,
                event.round_number,
                event.attempt,
                event.code,
            )


@consumer.handles(BatchSelected)
async def on_batch_selected(ctx: MessageContext[None], event: BatchSelected) -> None:
    async with ctx.unit_of_work() as uow:
        await loop_events.apply_selection(uow.conn, event)


@consumer.handles(PredictionsStored)
async def on_predictions_stored(ctx: MessageContext[None], event: PredictionsStored) -> None:
    async with ctx.unit_of_work() as uow:
        await loop_events.record_predictions(uow.conn, event)
