"""What annotation does with the loop's events: model versions, selections, machine-made masks.

The trainer alone decides which model version is current: model.trained only records a version,
model.promoted makes one current. Auto-labelling uses the current version unless told otherwise.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access import Caller, acting, audit, service_actor
from medal.db.engine import insert_ignore
from medal.db.schema import annotation as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from medal.unit_of_work import UnitOfWork
from proto import AutoLabel, BatchSelected, ModelPromoted, ModelTrained, PredictionsStored
from proto.loop import PoolItem, TrainingSpec
from services.annotation import projects, rounds
from services.annotation.errors import ModelNotRecorded, NoModel
from services.annotation.records import AutoLabelJob, AutoLabelProgress
from services.annotation.tasks import _insert_mask

SOURCE = "annotation"
SHARD_SIZE = 100
AUTOLABEL_NAMESPACE = uuid.UUID("a4c6f2d0-7b1e-4d3a-8e5f-2c9b0d1e3f45")


async def record_model(conn: AsyncConnection, event: ModelTrained) -> None:
    """Record a trained version (not current: only its promotion makes it current)."""
    project = await projects.load_project(conn, event.project)
    recorded = await insert_ignore(
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
            "current": False,
            "created_at": utcnow(),
        },
        ["id"],
    )
    if recorded:
        details = {"version": event.version, "labels": event.labels, "validation_dice": round(event.validation_dice, 4)}
        trainer = service_actor("trainer")
        await audit.record(conn, trainer, "model-trained", project.name, "model", str(event.model_version_id), details)


async def apply_promotion(uow: UnitOfWork, event: ModelPromoted) -> None:
    """Make the promoted version current; once the project is done, auto-label the rest with it.

    A promotion can overtake its version's model.trained: :class:`ModelNotRecorded` has it retried.
    """
    conn = uow.conn
    project = await projects.load_project(conn, event.project)
    m = tables.models
    version_id = str(event.model_version_id)
    known = (await conn.execute(select(m.c.id).where(m.c.id == version_id, m.c.project_id == project.id))).first()
    if known is None:
        raise ModelNotRecorded(version_id)
    await conn.execute(update(m).where(m.c.project_id == project.id, m.c.id != version_id).values(current=False))
    await conn.execute(update(m).where(m.c.id == version_id).values(current=True))
    if (
        project.settings.auto_label_when_done
        and await rounds.project_done(conn, project)
        and await _trained_on_the_last_round(conn, project.id, version_id)
    ):
        await _queue_autolabel(uow, project, version_id)


async def _trained_on_the_last_round(conn: AsyncConnection, project_id: str, version_id: str) -> bool:
    """The version learnt from the newest closed round: a promotion retried late (or of an earlier round)
    must not auto-label the project while the model of its last labels is still training."""
    r, m = tables.rounds, tables.models
    newest = (
        await conn.execute(
            select(r.c.id).where(r.c.project_id == project_id, r.c.state != "open").order_by(r.c.number.desc()).limit(1)
        )
    ).scalar()
    trained_on = (await conn.execute(select(m.c.round_id).where(m.c.id == version_id))).scalar()
    return newest is not None and newest == trained_on


async def apply_selection(conn: AsyncConnection, event: BatchSelected) -> None:
    project = await projects.load_project(conn, event.project)
    await rounds.apply_selection(
        conn,
        project,
        str(event.selection_id),
        str(event.model_version_id),
        [str(i) for i in event.chosen],
        [str(i) for i in event.backlog],
    )


async def record_predictions(conn: AsyncConnection, event: PredictionsStored) -> None:
    """Record machine-made masks, unless a person labelled the image meanwhile. Once per (job, shard)."""
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


async def request_autolabel(
    platform: Platform, project_name: str, model_version_id: str | None, caller: Caller | None = None
) -> AutoLabelJob:
    """Label every unlabelled image with ``model_version_id`` or, by default, the current (promoted) version."""
    async with platform.unit_of_work(SOURCE) as uow:
        project = await projects.load_project(uow.conn, project_name)
        job = await _queue_autolabel(uow, project, model_version_id)
        details = {"model_version_id": job.model_version_id, "images": job.images}
        await audit.record(uow.conn, acting(caller), "autolabel-requested", project.name, "job", job.job_id, details)
        return job


async def _queue_autolabel(
    uow: UnitOfWork, project: projects.ProjectRecord, model_version_id: str | None
) -> AutoLabelJob:
    conn = uow.conn
    m = tables.models
    query = select(m).where(m.c.project_id == project.id)
    query = query.where(m.c.id == model_version_id) if model_version_id else query.where(m.c.current.is_(True))
    model = (await conn.execute(query.limit(1))).first()
    if model is None:
        raise NoModel(
            f"model version {model_version_id} is not one of this project's"
            if model_version_id
            else "the project has no current model yet (the trainer promotes one when it has trained it)"
        )
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
            await uow.emit(command, message_id=uuid.uuid5(AUTOLABEL_NAMESPACE, f"{job_id}/{index}"))
    return AutoLabelJob(job_id=job_id, model_version_id=model.id, images=len(pool), shards=len(shards))


async def autolabel_progress(conn: AsyncConnection, project_id: str) -> list[AutoLabelProgress]:
    j, s = tables.autolabel_jobs, tables.autolabel_shards
    rows = await conn.execute(
        select(j.c.id, j.c.model_version_id, j.c.images, j.c.shard_count, func.count(s.c.shard_index).label("done"))
        .select_from(j.outerjoin(s, s.c.job_id == j.c.id))
        .where(j.c.project_id == project_id)
        .group_by(j.c.id, j.c.model_version_id, j.c.images, j.c.shard_count)
    )
    return [
        AutoLabelProgress(
            job_id=r.id,
            model_version_id=r.model_version_id,
            images=r.images,
            shards=r.shard_count,
            shards_done=r.done,
            complete=r.done >= r.shard_count,
        )
        for r in rows
    ]
