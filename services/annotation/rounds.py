"""Rounds: the cold start, completion (labelled-set and pool snapshots, the train event), next rounds."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access import acting, audit
from medal.db.engine import insert_ignore
from medal.db.schema import annotation as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from medal.unit_of_work import UnitOfWork
from proto import RoundCompleted
from proto.loop import PoolItem
from proto.manifests import LabelledItem, LabelledSet, Pool
from services.annotation.errors import EmptyPool, NoLabels, ProjectStarted
from services.annotation.projects import ProjectRecord
from services.annotation.records import Round, RoundFailure

NIL = "00000000-0000-0000-0000-000000000000"
ROUND_NAMESPACE = uuid.UUID("5d1f0a8e-3c2b-4e71-9b6a-0f4d2c8e1a77")
SEED_LIMIT = 2**31


async def human_masks(conn: AsyncConnection, project_id: str) -> dict[str, str]:
    """image id → key of its latest human-made mask."""
    m = tables.masks
    rows = await conn.execute(
        select(m.c.image_id, m.c.key, m.c.version)
        .where(m.c.project_id == project_id, m.c.machine_made.is_(False))
        .order_by(m.c.version)
    )
    return {row.image_id: row.key for row in rows}


async def images_in_open_tasks(conn: AsyncConnection, project_id: str) -> set[str]:
    t, r = tables.tasks, tables.rounds
    rows = await conn.execute(
        select(t.c.image_id).join(r, r.c.id == t.c.round_id).where(r.c.project_id == project_id, r.c.state == "open")
    )
    return {row.image_id for row in rows}


async def unlabelled_images(conn: AsyncConnection, project_id: str) -> list[Any]:
    """Images that are neither labelled by a person nor held out, oldest first."""
    labelled = await human_masks(conn, project_id)
    i = tables.images
    rows = (
        await conn.execute(
            select(i.c.id, i.c.training_key)
            .where(i.c.project_id == project_id, i.c.held_out.is_(False))
            .order_by(i.c.id)
        )
    ).all()
    return [row for row in rows if row.id not in labelled]


async def labels_count(conn: AsyncConnection, project_id: str) -> int:
    return len(await human_masks(conn, project_id))


async def project_done(conn: AsyncConnection, project: ProjectRecord) -> bool:
    """The budget is spent or the newest model reached the target validation Dice."""
    settings = project.settings
    if settings.label_budget is not None and await labels_count(conn, project.id) >= settings.label_budget:
        return True
    m = tables.models
    best = await _newest(conn, m.c.validation_dice, m.c.project_id == project.id, m.c.version)
    return best is not None and best >= settings.target_dice


async def _newest(conn: AsyncConnection, column: Any, condition: Any, order: Any) -> Any:
    """``column`` of the row that comes last by ``order`` among those matching ``condition`` (None: no row)."""
    return (await conn.execute(select(column).where(condition).order_by(order.desc()).limit(1))).scalar()


async def _next_number(conn: AsyncConnection, project_id: str) -> int:
    current = (
        await conn.execute(select(func.max(tables.rounds.c.number)).where(tables.rounds.c.project_id == project_id))
    ).scalar()
    return 0 if current is None else int(current) + 1


async def create_round(
    conn: AsyncConnection, project: ProjectRecord, image_ids: list[str], source: str, selection_id: str | None
) -> Round:
    number = await _next_number(conn, project.id)
    round_id = str(uuid.uuid5(ROUND_NAMESPACE, f"{project.id}/{number}"))
    await conn.execute(
        tables.rounds.insert().values(
            id=round_id,
            project_id=project.id,
            number=number,
            state="open",
            source=source,
            selection_id=selection_id,
            created_at=utcnow(),
        )
    )
    await add_tasks(conn, project, round_id, image_ids, start=0)
    (created,) = await round_summaries(conn, project.id, round_id)
    return created


async def add_tasks(
    conn: AsyncConnection, project: ProjectRecord, round_id: str, image_ids: list[str], start: int
) -> None:
    for position, image_id in enumerate(image_ids, start=start):
        await insert_ignore(
            conn,
            tables.tasks,
            {
                "id": str(uuid.uuid5(ROUND_NAMESPACE, f"{round_id}/{image_id}")),
                "round_id": round_id,
                "project_id": project.id,
                "image_id": image_id,
                "position": position,
                "state": "open",
            },
            ["id"],
        )


async def start_cold_start(conn: AsyncConnection, project: ProjectRecord) -> Round:
    """Round 0: a seeded random sample (no model exists yet); the rest of the order is the backlog."""
    if await _next_number(conn, project.id) != 0:
        raise ProjectStarted("the project already has rounds; next rounds come from the query service")
    pool = [row.id for row in await unlabelled_images(conn, project.id)]
    if not pool:
        raise EmptyPool("the project has no unlabelled images to start with")
    order = [pool[i] for i in np.random.default_rng(project.settings.seed).permutation(len(pool))]
    size = min(project.settings.initial_labels, len(order))
    selection_id = str(uuid.uuid5(ROUND_NAMESPACE, f"{project.id}/cold-start"))
    await insert_ignore(
        conn,
        tables.selections,
        {
            "id": selection_id,
            "project_id": project.id,
            "model_version_id": NIL,
            "chosen": order[:size],
            "backlog": order[size:],
            "created_at": utcnow(),
        },
        ["id"],
    )
    return await create_round(conn, project, order[:size], "cold-start", selection_id)


async def open_round(conn: AsyncConnection, project_id: str) -> Any:
    return (
        await conn.execute(
            select(tables.rounds)
            .where(tables.rounds.c.project_id == project_id, tables.rounds.c.state == "open")
            .order_by(tables.rounds.c.number)
            .limit(1)
        )
    ).first()


async def round_finished(conn: AsyncConnection, round_id: str) -> bool:
    pending = (
        await conn.execute(
            select(func.count())
            .select_from(tables.tasks)
            .where(tables.tasks.c.round_id == round_id, tables.tasks.c.state.in_(("open", "leased")))
        )
    ).scalar()
    return not pending


async def complete_round(platform: Platform, uow: UnitOfWork, project: ProjectRecord, round_row: Any) -> None:
    """Snapshot the labelled set and the pool, queue round.completed.v1, and open the next round if useful."""
    conn = uow.conn
    pool_size = await emit_training(platform, uow, project, round_row, attempt=1)
    await conn.execute(
        update(tables.rounds).where(tables.rounds.c.id == round_row.id).values(state="completed", completed_at=utcnow())
    )
    details = {"round_number": round_row.number, "attempt": 1, "pool": pool_size}
    await audit.record(conn, acting(None), "training-requested", project.name, "round", round_row.id, details)
    if project.settings.keep_annotators_busy and pool_size and not await project_done(conn, project):
        backlog = await _backlog(conn, project)
        if backlog:
            await create_round(conn, project, backlog[: project.settings.batch], "backlog", None)


async def emit_training(
    platform: Platform, uow: UnitOfWork, project: ProjectRecord, round_row: Any, *, attempt: int
) -> int:
    """Snapshot today's labelled set and pool as manifests and queue the round's train event; the pool size.

    The message id comes from the round and the attempt, so a retry is a new message and a repeat is not.
    """
    conn = uow.conn
    labelled = await human_masks(conn, project.id)
    if not labelled:
        raise NoLabels()
    images = {
        row.id: row
        for row in await conn.execute(
            select(tables.images.c.id, tables.images.c.training_key, tables.images.c.held_out).where(
                tables.images.c.project_id == project.id
            )
        )
    }
    train_items = [
        LabelledItem(image_id=uuid.UUID(i), image_key=images[i].training_key, mask_key=key)
        for i, key in sorted(labelled.items())
        if i in images and not images[i].held_out
    ]
    if not train_items:
        raise NoLabels()
    pool_rows = await unlabelled_images(conn, project.id)
    round_id = uuid.UUID(round_row.id)
    labelled_set = LabelledSet(
        project=project.name, round_id=round_id, num_classes=project.settings.num_classes, items=train_items
    )
    pool = Pool(
        project=project.name,
        round_id=round_id,
        items=[PoolItem(image_id=uuid.UUID(r.id), image_key=r.training_key) for r in pool_rows],
    )
    event = RoundCompleted(
        project=project.name,
        round_id=round_id,
        round_number=round_row.number,
        labels=len(train_items),
        labelled_set_key=await _put_manifest(platform, labelled_set.model_dump(mode="json")),
        pool_key=await _put_manifest(platform, pool.model_dump(mode="json")),
        committee_size=project.settings.committee,
        training=project.settings.training_spec(),
        selection=project.settings.selection_spec(),
        seed=(project.settings.seed + round_row.number) % SEED_LIMIT,
        attempt=attempt,
    )
    await uow.emit(event, message_id=uuid.uuid5(ROUND_NAMESPACE, f"done/{round_row.id}/{attempt}"))
    return len(pool_rows)


async def _backlog(conn: AsyncConnection, project: ProjectRecord) -> list[str]:
    """The newest selection's next-best candidates that are still unlabelled and not in a task."""
    sel = tables.selections
    latest = await _newest(conn, sel.c.backlog, sel.c.project_id == project.id, sel.c.created_at)
    if not latest:
        return []
    unlabelled = {row.id for row in await unlabelled_images(conn, project.id)}
    busy = await images_in_open_tasks(conn, project.id)
    return [image_id for image_id in latest if image_id in unlabelled and image_id not in busy]


async def apply_selection(
    conn: AsyncConnection,
    project: ProjectRecord,
    selection_id: str,
    model_version_id: str,
    chosen: list[str],
    backlog: list[str],
) -> Round | None:
    """Turn a selection into the next round's tasks (replacing untouched backlog tasks)."""
    created = await insert_ignore(
        conn,
        tables.selections,
        {
            "id": selection_id,
            "project_id": project.id,
            "model_version_id": model_version_id,
            "chosen": chosen,
            "backlog": backlog,
            "created_at": utcnow(),
        },
        ["id"],
    )
    if not created or await project_done(conn, project):
        return None
    unlabelled = {row.id for row in await unlabelled_images(conn, project.id)}
    current = await open_round(conn, project.id)
    if current is not None and current.source == "backlog":
        await conn.execute(
            delete(tables.tasks).where(tables.tasks.c.round_id == current.id, tables.tasks.c.state == "open")
        )
        kept_rows = (
            await conn.execute(
                select(tables.tasks.c.image_id, tables.tasks.c.position).where(tables.tasks.c.round_id == current.id)
            )
        ).all()
        kept = {row.image_id for row in kept_rows}
        next_position = max((row.position for row in kept_rows), default=-1) + 1
        fresh = [i for i in chosen if i in unlabelled and i not in kept][: max(0, project.settings.batch - len(kept))]
        await add_tasks(conn, project, current.id, fresh, start=next_position)
        await conn.execute(
            update(tables.rounds)
            .where(tables.rounds.c.id == current.id)
            .values(source="selection", selection_id=selection_id)
        )
        return None
    if current is not None:
        return None  # a round is still being labelled; the selection waits as the backlog's source
    fresh = [i for i in chosen if i in unlabelled]
    if not fresh:
        return None
    return await create_round(conn, project, fresh, "selection", selection_id)


async def _put_manifest(platform: Platform, document: dict[str, Any]) -> str:
    data = json.dumps(document, sort_keys=True).encode()
    stored = await asyncio.to_thread(platform.store.put_content, "manifests", data, "json", "application/json")
    return stored.key


async def round_summaries(conn: AsyncConnection, project_id: str, round_id: str | None = None) -> list[Round]:
    """The project's rounds (or the one ``round_id``) with their task counts and any training failure."""
    r, t = tables.rounds, tables.tasks
    columns = (r.c.id, r.c.number, r.c.state, r.c.source, r.c.attempt, r.c.completed_at)
    failure = (r.c.failure_code, r.c.failure_reason, r.c.failed_at)
    query = (
        select(*columns, *failure, func.count(t.c.id).label("tasks"), func.count(t.c.submitted_at).label("submitted"))
        .select_from(r.outerjoin(t, t.c.round_id == r.c.id))
        .where(r.c.project_id == project_id)
        .group_by(*columns, *failure)
        .order_by(r.c.number)
    )
    if round_id is not None:
        query = query.where(r.c.id == round_id)
    return [_round(row) for row in await conn.execute(query)]


def _round(row: Any) -> Round:
    failure = None
    if row.state == "training-failed" and row.failure_code:
        failure = RoundFailure(
            round_id=row.id,
            round_number=row.number,
            attempt=row.attempt,
            code=row.failure_code,
            reason=row.failure_reason or "",
            failed_at=row.failed_at,
        )
    return Round.model_validate({**row._mapping, "failure": failure})
