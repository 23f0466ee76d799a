"""Use cases behind the labelling routes: rounds, leases, status and the model list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from medal.access import Caller, acting, audit
from medal.db.schema import annotation as tables
from medal.platform import Platform
from services.annotation import loop_events, projects, retries, rounds, tasks
from services.annotation.errors import NoLabels, RoundClosed, RoundNotFound
from services.annotation.records import Lease, MaskInfo, ModelVersion, ProjectStatus, Round


async def start_round(platform: Platform, project_name: str, caller: Caller | None = None) -> Round:
    async with platform.db.begin() as conn:
        project = await projects.load_project(conn, project_name)
        started = await rounds.start_cold_start(conn, project)
        details = {"round_number": started.number, "tasks": started.tasks}
        await audit.record(conn, acting(caller), "round-started", project.name, "round", started.id, details)
        return started


async def close_round(platform: Platform, round_id: str, caller: Caller | str | None = None) -> None:
    """An admin ends a round early: unfinished tasks are skipped and training starts on what is labelled."""
    async with platform.unit_of_work("annotation") as uow:
        conn = uow.conn
        row = (await conn.execute(select(tables.rounds).where(tables.rounds.c.id == round_id))).first()
        if row is None:
            raise RoundNotFound(round_id)
        if row.state != "open":
            raise RoundClosed(f"round {row.number} is already {row.state}")
        project = await projects.load_project_by_id(conn, row.project_id)
        if not await rounds.human_masks(conn, project.id):
            raise NoLabels()
        await conn.execute(
            update(tables.tasks)
            .where(tables.tasks.c.round_id == round_id, tables.tasks.c.state.in_(("open", "leased")))
            .values(state="skipped")
        )
        await rounds.complete_round(platform, uow, project, row)
        details = {"round_number": row.number}
        await audit.record(conn, acting(caller), "round-closed", project.name, "round", round_id, details)


async def lease(platform: Platform, project_name: str, caller: Caller | str) -> Lease:
    """A task for the caller, or why there is none: training-failed (with why), done, waiting or not started."""
    leased = await tasks.lease_next(platform, project_name, acting(caller))
    if leased is not None:
        return Lease(task=leased, status="leased")
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        failure = await retries.latest_failure(conn, project.id)
        if failure is not None:
            return Lease(task=None, status="training-failed", failure=failure)
        if await rounds.project_done(conn, project):
            return Lease(task=None, status="done")
        started = (
            await conn.execute(
                select(func.count()).select_from(tables.rounds).where(tables.rounds.c.project_id == project.id)
            )
        ).scalar()
    return Lease(task=None, status="waiting-for-model" if started else "not-started")


async def list_rounds(platform: Platform, project_name: str) -> list[Round]:
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        return await rounds.round_summaries(conn, project.id)


async def _models(conn: AsyncConnection, project_id: str) -> list[ModelVersion]:
    m = tables.models
    rows = await conn.execute(select(m).where(m.c.project_id == project_id).order_by(m.c.version))
    return [ModelVersion.model_validate(row) for row in rows]


async def list_models(platform: Platform, project_name: str) -> list[ModelVersion]:
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        return await _models(conn, project.id)


async def status(platform: Platform, project_name: str) -> ProjectStatus:
    i = tables.images
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        held_out = [
            row.held_out for row in await conn.execute(select(i.c.held_out).where(i.c.project_id == project.id))
        ]
        return ProjectStatus(
            project=project.name,
            labels=await rounds.labels_count(conn, project.id),
            images=len(held_out),
            held_out=sum(held_out),
            rounds=await rounds.round_summaries(conn, project.id),
            models=await _models(conn, project.id),
            done=await rounds.project_done(conn, project),
            failure=await retries.latest_failure(conn, project.id),
            autolabel=await loop_events.autolabel_progress(conn, project.id),
        )


async def newest_masks(
    platform: Platform, project_name: str, *, machine_made: bool | None, author: str | None = None
) -> list[MaskInfo]:
    """Each image's newest mask; machine-made ones least confident first, so people spot-check those.

    ``author``: only the masks that caller made (an annotator sees its own work; reviewers see everyone's)."""
    m = tables.masks
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        newest: dict[str, Any] = {}
        for row in await conn.execute(select(m).where(m.c.project_id == project.id).order_by(m.c.version)):
            newest[row.image_id] = row
    rows = [
        r
        for r in newest.values()
        if (machine_made is None or r.machine_made == machine_made) and (author is None or r.author == author)
    ]
    rows.sort(key=lambda r: (not r.machine_made, r.confidence if r.confidence is not None else 2.0, r.image_id))
    return [MaskInfo.model_validate(r) for r in rows]
