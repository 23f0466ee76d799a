"""Use cases behind the labelling routes: rounds, leases, status and the model list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from medal.db.schema import annotation as tables
from medal.platform import Platform
from services.annotation import loop_events, projects, rounds, tasks


@dataclass(frozen=True)
class ModelInfo:
    id: str
    version: int
    round_id: str
    labels: int
    validation_dice: float
    current: bool
    created_at: datetime


async def start_round(platform: Platform, project_name: str) -> rounds.RoundInfo:
    async with platform.db.begin() as conn:
        project = await projects.load_project(conn, project_name)
        return await rounds.start_cold_start(conn, project)


async def close_round(platform: Platform, round_id: str) -> None:
    """An admin ends a round early: unfinished tasks are skipped and training starts on what is labelled."""
    async with platform.db.begin() as conn:
        row = (await conn.execute(select(tables.rounds).where(tables.rounds.c.id == round_id))).first()
        if row is None:
            raise rounds.RoundConflict("round-not-found", f"no round {round_id}")
        if row.state != "open":
            raise rounds.RoundConflict("round-closed", f"round {row.number} is already {row.state}")
        project = await projects.load_project_by_id(conn, row.project_id)
        if not await rounds.human_masks(conn, project.id):
            raise rounds.RoundConflict("no-labels", "the project has no labelled images: nothing to train on")
        await conn.execute(
            update(tables.tasks)
            .where(tables.tasks.c.round_id == round_id, tables.tasks.c.state.in_(("open", "leased")))
            .values(state="skipped")
        )
        await rounds.complete_round(platform, conn, project, row)


async def lease(platform: Platform, project_name: str, annotator: str) -> tuple[tasks.TaskLease | None, str]:
    """A task, or why there is none: not-started, waiting-for-model or done."""
    leased = await tasks.lease_next(platform, project_name, annotator)
    if leased is not None:
        return leased, "leased"
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        if await rounds.project_done(conn, project):
            return None, "done"
        started = (
            await conn.execute(
                select(func.count()).select_from(tables.rounds).where(tables.rounds.c.project_id == project.id)
            )
        ).scalar()
    return None, "waiting-for-model" if started else "not-started"


async def list_rounds(platform: Platform, project_name: str) -> list[rounds.RoundInfo]:
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        return await rounds.round_summaries(conn, project.id)


async def list_models(platform: Platform, project_name: str) -> list[ModelInfo]:
    m = tables.models
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        rows = await conn.execute(select(m).where(m.c.project_id == project.id).order_by(m.c.version))
        return [
            ModelInfo(r.id, r.version, r.round_id, r.labels, r.validation_dice, r.current, r.created_at) for r in rows
        ]


async def status(platform: Platform, project_name: str) -> dict[str, Any]:
    i = tables.images
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        labels = await rounds.labels_count(conn, project.id)
        held_out = [
            row.held_out for row in await conn.execute(select(i.c.held_out).where(i.c.project_id == project.id))
        ]
        summaries = await rounds.round_summaries(conn, project.id)
        done = await rounds.project_done(conn, project)
    return {
        "project": project.name,
        "labels": labels,
        "images": len(held_out),
        "held_out": sum(held_out),
        "rounds": [vars(r) for r in summaries],
        "models": [vars(m) for m in await list_models(platform, project_name)],
        "done": done,
        "autolabel": await loop_events.autolabel_progress(platform, project_name),
    }


@dataclass(frozen=True)
class MaskInfo:
    image_id: str
    version: int
    machine_made: bool
    confidence: float | None
    model_version_id: str | None
    author: str
    created_at: datetime


async def newest_masks(platform: Platform, project_name: str, *, machine_made: bool | None) -> list[MaskInfo]:
    """Each image's newest mask; machine-made ones least confident first, so people spot-check those."""
    m = tables.masks
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        newest: dict[str, Any] = {}
        for row in await conn.execute(select(m).where(m.c.project_id == project.id).order_by(m.c.version)):
            newest[row.image_id] = row
    rows = [r for r in newest.values() if machine_made is None or r.machine_made == machine_made]
    rows.sort(key=lambda r: (not r.machine_made, r.confidence if r.confidence is not None else 2.0, r.image_id))
    return [
        MaskInfo(r.image_id, r.version, r.machine_made, r.confidence, r.model_version_id, r.author, r.created_at)
        for r in rows
    ]
