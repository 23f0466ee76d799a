"""Reading selections back: list, show, replay from the stored scores; progress of scoring runs."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from medal.db.schema import query as tables
from medal.platform import Platform
from services.query.errors import SelectionNotFound
from services.query.schemas import CandidateOut, ReplayOut, RunOut, SelectionOut, SelectionSummaryOut
from services.query.service import load_scored_pool, outcome_for_run


def _records_query() -> Any:
    sel, r = tables.selections, tables.runs
    return select(sel, r.c.version, r.c.selection.label("spec")).select_from(
        sel.join(r, r.c.model_version_id == sel.c.model_version_id)
    )


def _candidates(row: Any) -> list[CandidateOut]:
    chosen = set(row.chosen)
    return [
        CandidateOut(
            image_id=image_id,
            rank=rank,
            uncertainty=float(scores["uncertainty"] or 0.0),
            entropy=float(scores["entropy"] or 0.0),
            bald=scores["bald"],
            chosen=image_id in chosen,
        )
        for rank, (image_id, scores) in enumerate(zip(row.candidates, row.scores, strict=True), start=1)
    ]


async def list_selections(platform: Platform, project: str) -> list[SelectionSummaryOut]:
    """A project's selections, newest model version first."""
    query = _records_query().where(tables.selections.c.project == project).order_by(tables.runs.c.version.desc())
    async with platform.db.connect() as conn:
        return [SelectionSummaryOut.model_validate(row) for row in (await conn.execute(query)).all()]


async def selection_project(platform: Platform, record_id: str) -> str | None:
    """The project of a selection (for ``require``); None when there is no such selection."""
    s = tables.selections
    async with platform.db.connect() as conn:
        name: str | None = await conn.scalar(select(s.c.project).where(s.c.id == record_id))
    return name


async def _selection_row(platform: Platform, record_id: str) -> Any:
    async with platform.db.connect() as conn:
        row = (await conn.execute(_records_query().where(tables.selections.c.id == record_id))).first()
    if row is None:
        raise SelectionNotFound(f"no selection {record_id}")
    return row


async def get_selection(platform: Platform, record_id: str) -> SelectionOut:
    """One selection with its candidates in rank order."""
    row = await _selection_row(platform, record_id)
    return SelectionOut.model_validate({**row._mapping, "candidates": _candidates(row)})


async def replay_selection(platform: Platform, record_id: str) -> ReplayOut:
    """Recompute a selection from the stored scores with the run's strategy and compare."""
    row = await _selection_row(platform, record_id)
    async with platform.db.connect() as conn:
        pool = await load_scored_pool(conn, row.model_version_id)
    outcome = await asyncio.to_thread(outcome_for_run, pool, row.model_version_id, row.spec)
    candidates_match = outcome.candidates == list(row.candidates) and outcome.scores == list(row.scores)
    backlog_match = outcome.backlog == list(row.backlog)
    return ReplayOut(
        selection_id=row.id,
        matches=outcome.chosen == list(row.chosen) and candidates_match and backlog_match,
        chosen=row.chosen,
        recomputed_chosen=outcome.chosen,
        candidates_match=candidates_match,
        backlog_match=backlog_match,
    )


async def list_runs(platform: Platform, project: str) -> list[RunOut]:
    """A project's scoring runs, newest model version first."""
    r, sel = tables.runs, tables.selections
    query = (
        select(r, r.c.selection["strategy"].as_string().label("strategy"), sel.c.id.label("selection_id"))
        .select_from(r.outerjoin(sel, sel.c.model_version_id == r.c.model_version_id))
        .where(r.c.project == project)
        .order_by(r.c.version.desc(), r.c.created_at.desc())
    )
    async with platform.db.connect() as conn:
        return [RunOut.model_validate(row) for row in (await conn.execute(query)).all()]
