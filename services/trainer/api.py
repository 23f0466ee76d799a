"""Trainer routes: compute info, rounds and member jobs with progress, the model registry.

Refusals are domain errors (services.trainer.registry) mapped once by the HTTP edge.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool

from medal.access import Action, Caller, require
from medal.compute import compute_info
from medal.dependencies import PlatformDep, ProjectPath
from services.trainer import progress, registry
from services.trainer.schemas import JobList, JobState, ModelComparison, ModelVersion, ModelVersionList

router = APIRouter(prefix="/v1", tags=["trainer"])
Version = Annotated[int, Path(ge=1)]
Viewer = Annotated[Caller, Depends(require(Action.VIEW))]
ModelAdmin = Annotated[Caller, Depends(require(Action.MODELS))]


@router.get("/info", summary="Version and the compute this worker pool runs on")
async def info() -> dict[str, Any]:
    return {"service": "trainer", "compute": await run_in_threadpool(compute_info)}


@router.get(
    "/projects/{project}/jobs",
    response_model=JobList,
    summary="Rounds (failed ones with their reason) and member jobs with progress and queue position",
)
async def list_jobs(
    project: ProjectPath,
    platform: PlatformDep,
    _: Viewer,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> JobList:
    return await progress.list_jobs(platform, project, state=state, limit=limit)


@router.get("/projects/{project}/models", response_model=ModelVersionList, summary="Model versions per round")
async def list_models(project: ProjectPath, platform: PlatformDep, _: Viewer) -> ModelVersionList:
    return await registry.list_versions(platform, project)


@router.get("/projects/{project}/models/compare", response_model=ModelComparison, summary="Compare two versions")
async def compare_models(
    project: ProjectPath,
    platform: PlatformDep,
    _: Viewer,
    a: Annotated[int, Query(ge=1)],
    b: Annotated[int, Query(ge=1)],
) -> ModelComparison:
    return await registry.compare(platform, project, a, b)


@router.post(
    "/projects/{project}/models/rollback", response_model=ModelVersion, summary="Make the previous version current"
)
async def rollback(project: ProjectPath, platform: PlatformDep, caller: ModelAdmin) -> ModelVersion:
    return await registry.rollback(platform, project, by=caller)


@router.get("/projects/{project}/models/{version}", response_model=ModelVersion, summary="One model version")
async def get_model(project: ProjectPath, version: Version, platform: PlatformDep, _: Viewer) -> ModelVersion:
    return await registry.get_version(platform, project, version)


@router.post(
    "/projects/{project}/models/{version}/promote", response_model=ModelVersion, summary="Make a version current"
)
async def promote(project: ProjectPath, version: Version, platform: PlatformDep, caller: ModelAdmin) -> ModelVersion:
    return await registry.promote(platform, project, version, by=caller)
