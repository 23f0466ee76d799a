"""What annotation does with the loop's events: model versions, selections, machine-made masks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.db.engine import insert_ignore
from medal.db.messaging import add_to_outbox, claim_message
from medal.db.schema import annotation as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from proto import AutoLabel, BatchSelected, Envelope, ModelPromoted, ModelTrained, PredictionsStored, envelope_for
from proto.loop import PoolItem, TrainingSpec
from services.annotation import projects, rounds
from services.annotation.tasks import _insert_mask

CONSUMER = "annotation"
SHARD_SIZE = 100
AUTOLABEL_NAMESPACE = uuid.UUID("a4c6f2d0-7b1e-4d3a-8e5f-2c9b0d1e3f45")


class NoModel(LookupError):
    """The project has no trained model yet."""


@dataclass(frozen=True)
class AutoLabelJob:
    job_id: str
    model_version_id: str
    images: int
    shards: int


async def on_model_trained(platform: Platform, envelope: Envelope, event: ModelTrained) -> None:
    async with platform.db.begin() as conn:
        if not await claim_message(conn, CONSUMER, str(envelope.id)):
            return
        project = await projects.load_project(conn, event.project)
        has_current = (
            await conn.execute(
                select(func.count())
                .select_from(tables.models)
                .where(tables.models.c.project_id == project.id, tables.models.c.current.is_(True))
            )
        ).scalar()
        await insert_ignore(
            conn,
            tables.models,
            {
                "id": str(event.model_version_id),
                "project_id": project.id,
                "round_id": str(event.round_id),
                "version": event.version,
                "labels": event.labels,
                "validation_dice": event.validation_dice,
                "member_keys": list(event.member_keys),
                "training": event.training.model_dump(mode="json"),
                "current": not has_current,
                "created_at": utcnow(),
            },
            ["id"],
        )
        if project.settings.auto_label_when_done and await rounds.project_done(conn, project):
            await _queue_autolabel(conn, project, str(event.model_version_id))


async def on_model_promoted(platform: Platform, envelope: Envelope, event: ModelPromoted) -> None:
    async with platform.db.begin() as conn:
        if not await claim_message(conn, CONSUMER, str(envelope.id)):
            return
        project = await projects.load_project(conn, event.project)
        m = tables.models
        await conn.execute(update(m).where(m.c.project_id == project.id).values(current=False))
        await conn.execute(update(m).where(m.c.id == str(event.model_version_id)).values(current=True))


async def on_batch_selected(platform: Platform, envelope: Envelope, event: BatchSelected) -> None:
    async with platform.db.begin() as conn:
        if not await claim_message(conn, CONSUMER, str(envelope.id)):
            return
        project = await projects.load_project(conn, event.project)
        await rounds.apply_selection(
            conn,
            project,
            str(event.selection_id),
            str(event.model_version_id),
            [str(i) for i in event.chosen],
            [str(i) for i in event.backlog],
        )


async def on_predictions_stored(platform: Platform, envelope: Envelope, event: PredictionsStored) -> None:
    """Record machine-made masks, unless a person labelled the image meanwhile. Once per (job, shard)."""
    async with platform.db.begin() as conn:
        if not await claim_message(conn, CONSUMER, str(envelope.id)):
            return
        first_time = await insert_ignore(
            conn,
            tables.autolabel_shards,
            {"job_id": str(event.job_id), "shard_index": event.shard_index, "completed_at": utcnow()},
            ["job_id", "shard_index"],
        )
        if not first_time:
            return
        project = await projects.load_project(conn, event.project)
        labelled = await rounds.human_masks(conn, project.id)
        for prediction in event.predictions:
            image_id = str(prediction.image_id)
            if image_id in labelled:
                continue
            await _insert_mask(
                conn,
                project.id,
                image_id,
                prediction.mask_key,
                prediction.mask_sha256,
                "machine",
                machine_made=True,
                model_version_id=str(event.model_version_id),
                confidence=prediction.confidence,
            )


async def request_autolabel(platform: Platform, project_name: str, model_version_id: str | None) -> AutoLabelJob:
    async with platform.db.begin() as conn:
        project = await projects.load_project(conn, project_name)
        return await _queue_autolabel(conn, project, model_version_id)


async def _queue_autolabel(
    conn: AsyncConnection, project: projects.ProjectRecord, model_version_id: str | None
) -> AutoLabelJob:
    m = tables.models
    query = select(m).where(m.c.project_id == project.id)
    query = (
        query.where(m.c.id == model_version_id)
        if model_version_id
        else query.order_by(m.c.current.desc(), m.c.version.desc())
    )
    model = (await conn.execute(query.limit(1))).first()
    if model is None:
        raise NoModel(project.name)
    pool = await rounds.unlabelled_images(conn, project.id)
    job_id = str(uuid.uuid5(AUTOLABEL_NAMESPACE, f"{project.id}/{model.id}/{len(pool)}"))
    shards = [pool[i : i + SHARD_SIZE] for i in range(0, len(pool), SHARD_SIZE)]
    created = await insert_ignore(
        conn,
        tables.autolabel_jobs,
        {
            "id": job_id,
            "project_id": project.id,
            "model_version_id": model.id,
            "shard_count": len(shards),
            "images": len(pool),
            "created_at": utcnow(),
        },
        ["id"],
    )
    if created:
        for index, shard in enumerate(shards):
            command = AutoLabel(
                project=project.name,
                job_id=uuid.UUID(job_id),
                model_version_id=uuid.UUID(model.id),
                member_keys=list(model.member_keys),
                training=TrainingSpec.model_validate(model.training),
                shard_index=index,
                shard_count=len(shards),
                items=[PoolItem(image_id=uuid.UUID(row.id), image_key=row.training_key) for row in shard],
            )
            message_id = uuid.uuid5(AUTOLABEL_NAMESPACE, f"{job_id}/{index}")
            await add_to_outbox(conn, envelope_for(command, source=CONSUMER, message_id=message_id))
    return AutoLabelJob(job_id, model.id, len(pool), len(shards))


async def autolabel_progress(platform: Platform, project_name: str) -> list[dict[str, object]]:
    j, s = tables.autolabel_jobs, tables.autolabel_shards
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        rows = await conn.execute(
            select(j.c.id, j.c.model_version_id, j.c.images, j.c.shard_count, func.count(s.c.shard_index).label("done"))
            .select_from(j.outerjoin(s, s.c.job_id == j.c.id))
            .where(j.c.project_id == project.id)
            .group_by(j.c.id, j.c.model_version_id, j.c.images, j.c.shard_count)
        )
        return [
            {
                "job_id": r.id,
                "model_version_id": r.model_version_id,
                "images": r.images,
                "shards": r.shard_count,
                "shards_done": r.done,
                "complete": r.done >= r.shard_count,
            }
            for r in rows
        ]
