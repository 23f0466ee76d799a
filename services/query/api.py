"""Query routes: compute info, and the selections of each model version (audit and replay)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from medal.access import Action, Caller, from_path, require
from medal.compute import compute_info
from medal.dependencies import IdPath, PlatformDep, ProjectPath
from services.query import audit
from services.query.errors import SelectionNotFound
from services.query.schemas import ReplayOut, RunOut, SelectionOut, SelectionSummaryOut

router = APIRouter(prefix="/v1", tags=["query"])


def no_selection(selection_id: str) -> SelectionNotFound:
    return SelectionNotFound(f"no selection {selection_id}")


Viewer = Annotated[Caller, Depends(require(Action.VIEW))]
SelectionViewer = Annotated[
    Caller,
    Depends(require(Action.VIEW, project=from_path("selection_id", audit.selection_project, missing=no_selection))),
]
SelectionAuditor = Annotated[
    Caller,
    Depends(require(Action.AUDIT, project=from_path("selection_id", audit.selection_project, missing=no_selection))),
]


@router.get("/info", summary="Version and the compute this worker pool runs on")
async def info() -> dict[str, Any]:
    return {"service": "query", "compute": await run_in_threadpool(compute_info)}


@router.get(
    "/projects/{project}/runs",
    summary="Pool-scoring runs of a project (one per model version): shards scored, selection made",
)
async def list_runs(project: ProjectPath, platform: PlatformDep, _: Viewer) -> list[RunOut]:
    return await audit.list_runs(platform, project)


@router.get("/projects/{project}/selections", summary="A project's selections, newest model version first")
async def list_selections(project: ProjectPath, platform: PlatformDep, _: Viewer) -> list[SelectionSummaryOut]:
    return await audit.list_selections(platform, project)


@router.get(
    "/selections/{selection_id}",
    summary="One selection: model version, candidates in rank order with their scores, chosen images",
)
async def get_selection(selection_id: IdPath, platform: PlatformDep, _: SelectionViewer) -> SelectionOut:
    return await audit.get_selection(platform, selection_id)


@router.post(
    "/selections/{selection_id}/replay",
    summary="Recompute a selection from the stored scores and say whether it matches (project admins)",
)
async def replay_selection(selection_id: IdPath, platform: PlatformDep, _: SelectionAuditor) -> ReplayOut:
    return await audit.replay_selection(platform, selection_id)
