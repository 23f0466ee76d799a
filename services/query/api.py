"""Query routes: compute info, and the selections of each model version (audit and replay)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool

from medal.compute import compute_info
from medal.errors import ApiError
from services.query import audit
from services.query.schemas import (
    PROJECT_PATTERN,
    UUID_PATTERN,
    CandidateOut,
    ReplayOut,
    RunOut,
    SelectionOut,
    SelectionSummaryOut,
)

router = APIRouter(prefix="/v1", tags=["query"])
ProjectName = Annotated[str, Path(pattern=PROJECT_PATTERN)]
SelectionId = Annotated[str, Path(pattern=UUID_PATTERN)]


@router.get("/info", summary="Version and the compute this worker pool runs on")
async def info() -> dict[str, Any]:
    return {"service": "query", "compute": await run_in_threadpool(compute_info)}


def _summary(record: audit.SelectionRecord) -> SelectionSummaryOut:
    return SelectionSummaryOut(
        id=record.id,
        project=record.project,
        model_version_id=record.model_version_id,
        version=record.version,
        strategy=record.strategy,
        candidates_k=record.candidates_k,
        batch_k=record.batch_k,
        pool_size=record.pool_size,
        chosen=record.chosen,
        created_at=record.created_at,
    )


@router.get(
    "/projects/{project}/runs",
    response_model=list[RunOut],
    summary="Pool-scoring runs of a project (one per model version): shards scored, selection made",
)
async def list_runs(project: ProjectName, request: Request) -> list[RunOut]:
    return [RunOut(**vars(run)) for run in await audit.list_runs(request.app.state.platform, project)]


@router.get(
    "/projects/{project}/selections",
    response_model=list[SelectionSummaryOut],
    summary="A project's selections, newest model version first",
)
async def list_selections(project: ProjectName, request: Request) -> list[SelectionSummaryOut]:
    return [_summary(r) for r in await audit.list_selections(request.app.state.platform, project)]


@router.get(
    "/selections/{selection_id}",
    response_model=SelectionOut,
    summary="One selection: model version, candidates in rank order with their scores, chosen images",
)
async def get_selection(selection_id: SelectionId, request: Request) -> SelectionOut:
    try:
        record = await audit.get_selection(request.app.state.platform, selection_id)
    except audit.SelectionNotFound:
        raise ApiError(404, "selection-not-found", f"no selection {selection_id}") from None
    chosen = set(record.chosen)
    candidates = [
        CandidateOut(
            image_id=image_id,
            rank=rank,
            uncertainty=float(scores["uncertainty"] or 0.0),
            entropy=float(scores["entropy"] or 0.0),
            bald=scores["bald"],
            chosen=image_id in chosen,
        )
        for rank, (image_id, scores) in enumerate(zip(record.candidates, record.scores, strict=True), start=1)
    ]
    return SelectionOut(**_summary(record).model_dump(), candidates=candidates, backlog=record.backlog)


@router.post(
    "/selections/{selection_id}/replay",
    response_model=ReplayOut,
    summary="Recompute a selection from the stored scores and say whether it matches",
)
async def replay_selection(selection_id: SelectionId, request: Request) -> ReplayOut:
    try:
        replay = await audit.replay_selection(request.app.state.platform, selection_id)
    except audit.SelectionNotFound:
        raise ApiError(404, "selection-not-found", f"no selection {selection_id}") from None
    return ReplayOut(**vars(replay))
