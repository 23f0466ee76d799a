"""Reading selections back: list, show, replay from the stored scores; progress of scoring runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from medal.db.schema import query as tables
from medal.platform import Platform
from services.query.service import load_scored_pool, outcome_for_run


class SelectionNotFound(LookupError):
    pass


@dataclass(frozen=True)
class SelectionRecord:
    """A stored selection as the audit API shows it."""

    id: str
    project: str
    model_version_id: str
    version: int
    strategy: str
    candidates_k: int
    batch_k: int
    pool_size: int
    candidates: list[str]
    scores: list[dict[str, float | None]]
    chosen: list[str]
    backlog: list[str]
    created_at: datetime


@dataclass(frozen=True)
class Replay:
    """A selection recomputed from the stored scores, next to what was stored."""

    selection_id: str
    matches: bool
    chosen: list[str]
    recomputed_chosen: list[str]
    candidates_match: bool
    backlog_match: bool


def _record(row: Any) -> SelectionRecord:
    return SelectionRecord(
        id=row.id,
        project=row.project,
        model_version_id=row.model_version_id,
        version=row.version,
        strategy=row.strategy,
        candidates_k=row.candidates_k,
        batch_k=row.batch_k,
        pool_size=row.pool_size,
        candidates=list(row.candidates),
        scores=list(row.scores),
        chosen=list(row.chosen),
        backlog=list(row.backlog),
        created_at=row.created_at,
    )


def _records_query() -> Any:
    sel, r = tables.selections, tables.runs
    return select(sel, r.c.version).select_from(sel.join(r, r.c.model_version_id == sel.c.model_version_id))


async def list_selections(platform: Platform, project: str) -> list[SelectionRecord]:
    """A project's selections, newest model version first."""
    query = _records_query().where(tables.selections.c.project == project).order_by(tables.runs.c.version.desc())
    async with platform.db.connect() as conn:
        return [_record(row) for row in (await conn.execute(query)).all()]


async def get_selection(platform: Platform, record_id: str) -> SelectionRecord:
    async with platform.db.connect() as conn:
        row = (await conn.execute(_records_query().where(tables.selections.c.id == record_id))).first()
    if row is None:
        raise SelectionNotFound(record_id)
    return _record(row)


async def replay_selection(platform: Platform, record_id: str) -> Replay:
    """Recompute a selection from the stored scores with the run's strategy and compare."""
    record = await get_selection(platform, record_id)
    r = tables.runs
    async with platform.db.connect() as conn:
        spec = (
            await conn.execute(select(r.c.selection).where(r.c.model_version_id == record.model_version_id))
        ).scalar_one()
        pool = await load_scored_pool(conn, record.model_version_id)
    outcome = await asyncio.to_thread(outcome_for_run, pool, record.model_version_id, spec)
    candidates_match = outcome.candidates == record.candidates and outcome.scores == record.scores
    backlog_match = outcome.backlog == record.backlog
    return Replay(
        selection_id=record.id,
        matches=outcome.chosen == record.chosen and candidates_match and backlog_match,
        chosen=record.chosen,
        recomputed_chosen=outcome.chosen,
        candidates_match=candidates_match,
        backlog_match=backlog_match,
    )


@dataclass(frozen=True)
class RunProgress:
    """How far the scoring of one model version's pool has come."""

    model_version_id: str
    version: int
    strategy: str
    pool_size: int
    shard_count: int
    shards_done: int
    selection_id: str | None
    created_at: datetime


async def list_runs(platform: Platform, project: str) -> list[RunProgress]:
    """A project's scoring runs, newest model version first."""
    r, sel = tables.runs, tables.selections
    query = (
        select(r, sel.c.id.label("selection_id"))
        .select_from(r.outerjoin(sel, sel.c.model_version_id == r.c.model_version_id))
        .where(r.c.project == project)
        .order_by(r.c.version.desc(), r.c.created_at.desc())
    )
    async with platform.db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        RunProgress(
            model_version_id=row.model_version_id,
            version=row.version,
            strategy=str(row.selection["strategy"]),
            pool_size=row.pool_size,
            shard_count=row.shard_count,
            shards_done=row.shards_done,
            selection_id=row.selection_id,
            created_at=row.created_at,
        )
        for row in rows
    ]
