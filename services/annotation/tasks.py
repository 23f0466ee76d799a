"""Tasks: leased to one caller at a time, submitted and skipped by that caller; versioned mask edits."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access import Action, Caller, acting, audit, check
from medal.db.schema import annotation as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from medal.unit_of_work import UnitOfWork
from services.annotation import mask_codec, projects, rounds
from services.annotation.errors import (
    ImageNotFound,
    LeaseExpired,
    MaskNotFound,
    NotYourLease,
    StaleVersion,
    TaskClosed,
    TaskNotFound,
)
from services.annotation.mask_codec import Mask
from services.annotation.records import MaskApproved, MaskSaved, TaskLease

SOURCE = "annotation"


async def lease_next(platform: Platform, project_name: str, caller: Caller | str) -> TaskLease | None:
    """Lease the next open task (or one whose lease expired) of the project's open rounds."""
    actor = acting(caller)
    caller_id = actor.id
    t, r, i = tables.tasks, tables.rounds, tables.images
    async with platform.db.begin() as conn:
        project = await projects.load_project(conn, project_name)
        now = utcnow()
        candidates = (
            await conn.execute(
                select(
                    t.c.id.label("task_id"),
                    t.c.round_id,
                    r.c.number.label("round_number"),
                    t.c.image_id,
                    i.c.width,
                    i.c.height,
                )
                .join(r, r.c.id == t.c.round_id)
                .join(i, i.c.id == t.c.image_id)
                .where(
                    t.c.project_id == project.id,
                    r.c.state == "open",
                    or_(t.c.state == "open", (t.c.state == "leased") & (t.c.lease_expires_at < now)),
                )
                .order_by(r.c.number, t.c.position)
                .limit(20)
            )
        ).all()
        token = str(uuid.uuid4())
        expires = now + timedelta(seconds=project.settings.lease_seconds)
        for row in candidates:
            claimed = await conn.execute(
                update(t)
                .where(
                    t.c.id == row.task_id,
                    or_(t.c.state == "open", (t.c.state == "leased") & (t.c.lease_expires_at < now)),
                )
                .values(state="leased", lease_owner=caller_id, lease_token=token, lease_expires_at=expires)
            )
            if claimed.rowcount == 1:
                details = {"image_id": row.image_id, "round_number": row.round_number}
                await audit.record(conn, actor, "leased", project.name, "task", row.task_id, details)
                return TaskLease(**row._mapping, lease_token=token, lease_expires_at=expires)
    return None


async def _leased_task(conn: AsyncConnection, task_id: str, token: str, caller_id: str) -> Any:
    """The task, if ``caller_id`` holds its lease under ``token`` and the lease is still running."""
    t, i = tables.tasks, tables.images
    row = (
        await conn.execute(select(t, i.c.width, i.c.height).join(i, i.c.id == t.c.image_id).where(t.c.id == task_id))
    ).first()
    if row is None:
        raise TaskNotFound(task_id)
    if row.state in ("submitted", "skipped"):
        raise TaskClosed(f"task was already {row.state}")
    if row.state != "leased" or row.lease_token != token or row.lease_owner != caller_id:
        raise NotYourLease("task is not leased to you (lease it again)")
    if row.lease_expires_at < utcnow():
        raise LeaseExpired("your lease on this task expired; lease the next task again")
    return row


async def submit(platform: Platform, task_id: str, token: str, caller: Caller | str, mask: Mask) -> MaskSaved:
    """Validate and store the caller's mask, close the task, and complete the round when it was the last one."""
    actor = acting(caller)
    caller_id = actor.id
    async with platform.db.connect() as conn:
        row = await _leased_task(conn, task_id, token, caller_id)
        project = await projects.load_project_by_id(conn, row.project_id)
    mask_codec.validate(mask, width=row.width, height=row.height, num_classes=project.settings.num_classes)
    png = mask_codec.encode_png(mask)
    stored = await asyncio.to_thread(platform.store.put_content, "masks", png, "png", "image/png")
    t = tables.tasks
    async with platform.unit_of_work(SOURCE) as uow:
        closed = await uow.conn.execute(
            update(t)
            .where(
                t.c.id == task_id,
                t.c.state == "leased",
                t.c.lease_token == token,
                t.c.lease_owner == caller_id,
                t.c.lease_expires_at >= utcnow(),
            )
            .values(state="submitted", submitted_at=utcnow())
        )
        if closed.rowcount != 1:
            raise LeaseExpired("your lease on this task ended before the mask was saved")
        suggestion = await _suggestion(uow.conn, row.image_id)
        version = await _insert_mask(uow.conn, project.id, row.image_id, stored.key, stored.sha256, caller_id)
        details = {"task_id": task_id, "version": version, **suggestion}
        await audit.record(uow.conn, actor, "labelled", project.name, "image", row.image_id, details)
        completed = await _complete_if_finished(platform, uow, project, row.round_id)
    return MaskSaved(image_id=row.image_id, version=version, round_completed=completed)


async def skip(platform: Platform, task_id: str, token: str, caller: Caller | str) -> bool:
    """The caller gives a leased task back without a mask; True when that completed the round."""
    actor = acting(caller)
    async with platform.unit_of_work(SOURCE) as uow:
        row = await _leased_task(uow.conn, task_id, token, actor.id)
        project = await projects.load_project_by_id(uow.conn, row.project_id)
        await uow.conn.execute(update(tables.tasks).where(tables.tasks.c.id == task_id).values(state="skipped"))
        await audit.record(uow.conn, actor, "skipped", project.name, "task", task_id, {"image_id": row.image_id})
        return await _complete_if_finished(platform, uow, project, row.round_id)


async def _complete_if_finished(
    platform: Platform, uow: UnitOfWork, project: projects.ProjectRecord, round_id: str
) -> bool:
    conn = uow.conn
    if not await rounds.round_finished(conn, round_id):
        return False
    round_row = (await conn.execute(select(tables.rounds).where(tables.rounds.c.id == round_id))).first()
    if round_row is None or round_row.state != "open":
        return False
    if not await rounds.human_masks(conn, project.id):
        return False  # everything skipped: nothing to train on; an admin closes or re-opens the round
    await rounds.complete_round(platform, uow, project, round_row)
    return True


async def _insert_mask(
    conn: AsyncConnection,
    project_id: str,
    image_id: str,
    key: str,
    sha256: str,
    author: str,
    *,
    machine_made: bool = False,
    model_version_id: str | None = None,
    confidence: float | None = None,
) -> int:
    version = await mask_version(conn, image_id) + 1
    await conn.execute(
        tables.masks.insert().values(
            id=str(uuid.uuid4()),
            image_id=image_id,
            project_id=project_id,
            version=version,
            key=key,
            sha256=sha256,
            machine_made=machine_made,
            model_version_id=model_version_id,
            confidence=confidence,
            author=author,
            created_at=utcnow(),
        )
    )
    return version


async def mask_version(conn: AsyncConnection, image_id: str) -> int:
    current = (
        await conn.execute(select(func.max(tables.masks.c.version)).where(tables.masks.c.image_id == image_id))
    ).scalar()
    return int(current or 0)


async def newest_mask(conn: AsyncConnection, image_id: str) -> Any:
    m = tables.masks
    return (await conn.execute(select(m).where(m.c.image_id == image_id).order_by(m.c.version.desc()).limit(1))).first()


async def _suggestion(conn: AsyncConnection, image_id: str) -> dict[str, Any]:
    """Audit details of what a new mask replaces: a model's pre-annotation (its version) or a person's mask."""
    previous = await newest_mask(conn, image_id)
    if previous is None:
        return {"over": "nothing"}
    if previous.machine_made:
        return {
            "over": "model-suggestion",
            "model_version_id": previous.model_version_id,
            "suggestion": previous.version,
        }
    return {"over": "mask", "previous": previous.version}


def _may_touch(caller: Caller, previous: Any, action: Action, project: str) -> None:
    """Someone else's work, a model's suggestion or an unlabelled image needs ``action`` (reviewer and up)."""
    if previous is None or previous.machine_made or previous.author != caller.id:
        check(caller, action, project)


async def edit_mask(
    platform: Platform, image_id: str, expected_version: int, author: Caller | str, mask: Mask
) -> MaskSaved:
    """Save a new version only if nobody saved one since ``expected_version`` (optimistic concurrency).

    An annotator corrects its own masks; a new version of anyone else's (or of a model's) is a reviewer's."""
    actor = acting(author)
    i = tables.images
    async with platform.db.connect() as conn:
        image = (await conn.execute(select(i).where(i.c.id == image_id))).first()
        if image is None:
            raise ImageNotFound(image_id)
        project = await projects.load_project_by_id(conn, image.project_id)
        _may_touch(actor, await newest_mask(conn, image_id), Action.CORRECT_ANY, project.name)
    mask_codec.validate(mask, width=image.width, height=image.height, num_classes=project.settings.num_classes)
    stored = await asyncio.to_thread(
        platform.store.put_content, "masks", mask_codec.encode_png(mask), "png", "image/png"
    )
    async with platform.db.begin() as conn:
        if await mask_version(conn, image_id) != expected_version:
            raise StaleVersion()
        replaced = await newest_mask(conn, image_id)
        suggestion = await _suggestion(conn, image_id)
        version = await _insert_mask(conn, project.id, image_id, stored.key, stored.sha256, actor.id)
        own = replaced is not None and not replaced.machine_made and replaced.author == actor.id
        action = "relabelled" if own else "corrected" if replaced is not None else "labelled"
        await audit.record(conn, actor, action, project.name, "image", image_id, {"version": version, **suggestion})
    return MaskSaved(image_id=image_id, version=version)


async def current_mask(
    platform: Platform, image_id: str, viewer: Caller | None = None
) -> tuple[int, bytes, bool, float | None, str | None]:
    """(version, PNG, machine_made, confidence, model version) of the newest mask of an image.

    ``viewer``: an annotator sees its own masks and the model's suggestions; a person's mask is a reviewer's."""
    async with platform.db.connect() as conn:
        row = await newest_mask(conn, image_id)
        if row is not None and viewer is not None and not row.machine_made and row.author != viewer.id:
            project = await projects.load_project_by_id(conn, row.project_id)
            check(viewer, Action.REVIEW, project.name)
    if row is None:
        raise MaskNotFound(image_id)
    data = await asyncio.to_thread(platform.store.get, row.key)
    return row.version, data, row.machine_made, row.confidence, row.model_version_id


async def approve(platform: Platform, image_id: str, version: int, caller: Caller) -> MaskApproved:
    """A reviewer approves the newest version of an image's mask (412 stale-version for an older one)."""
    m = tables.masks
    async with platform.db.begin() as conn:
        row = await newest_mask(conn, image_id)
        if row is None:
            raise MaskNotFound(image_id)
        if row.version != version:
            raise StaleVersion()
        project = await projects.load_project_by_id(conn, row.project_id)
        now = utcnow()
        await conn.execute(update(m).where(m.c.id == row.id).values(approved_by=caller.id[:128], approved_at=now))
        details: dict[str, Any] = {"version": version, "author": row.author[:128], "machine_made": row.machine_made}
        if row.model_version_id:
            details["model_version_id"] = row.model_version_id
        await audit.record(conn, caller, "approved", project.name, "mask", image_id, details)
    return MaskApproved(image_id=image_id, version=version, approved_by=caller.id, approved_at=now)
