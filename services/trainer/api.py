"""Trainer routes: compute info, member jobs with progress, the model registry."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from medal.compute import compute_info
from medal.errors import ApiError
from services.trainer import progress, registry
from services.trainer.schemas import (
    PROJECT_PATTERN,
    JobList,
    JobOut,
    JobState,
    ModelComparison,
    ModelVersionList,
    ModelVersionOut,
)

router = APIRouter(prefix="/v1", tags=["trainer"])
ProjectName = Annotated[str, Path(pattern=PROJECT_PATTERN)]
Version = Annotated[int, Path(ge=1)]


def _version_out(version: registry.ModelVersion) -> ModelVersionOut:
    return ModelVersionOut.model_validate(asdict(version))


@router.get("/info", summary="Version and the compute this worker pool runs on")
async def info() -> dict[str, Any]:
    return {"service": "trainer", "compute": await run_in_threadpool(compute_info)}


@router.get("/projects/{project}/jobs", response_model=JobList, summary="Member jobs with progress and queue position")
async def list_jobs(
    project: ProjectName,
    request: Request,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> JobList:
    jobs = await progress.list_jobs(request.app.state.platform, project, state=state, limit=limit)
    return JobList(project=project, jobs=[JobOut.model_validate(asdict(job)) for job in jobs])


@router.get("/projects/{project}/models", response_model=ModelVersionList, summary="Model versions per round")
async def list_models(project: ProjectName, request: Request) -> ModelVersionList:
    versions = await registry.list_versions(request.app.state.platform, project)
    current = next((v.version for v in versions if v.status == registry.CURRENT), None)
    return ModelVersionList(project=project, current=current, versions=[_version_out(v) for v in versions])


@router.get("/projects/{project}/models/compare", response_model=ModelComparison, summary="Compare two versions")
async def compare_models(
    project: ProjectName,
    request: Request,
    a: Annotated[int, Query(ge=1)],
    b: Annotated[int, Query(ge=1)],
) -> ModelComparison:
    try:
        comparison = await registry.compare(request.app.state.platform, project, a, b)
    except registry.VersionNotFound as exc:
        raise ApiError(404, "model-version-not-found", str(exc)) from None
    return ModelComparison(
        project=project,
        a=_version_out(comparison.a),
        b=_version_out(comparison.b),
        validation_dice_change=comparison.validation_dice_change,
        labels_added=comparison.labels_added,
    )


@router.post(
    "/projects/{project}/models/rollback", response_model=ModelVersionOut, summary="Make the previous version current"
)
async def rollback(project: ProjectName, request: Request) -> ModelVersionOut:
    try:
        return _version_out(await registry.rollback(request.app.state.platform, project))
    except registry.NothingToRollBackTo as exc:
        raise ApiError(409, "nothing-to-roll-back-to", str(exc)) from None


@router.get("/projects/{project}/models/{version}", response_model=ModelVersionOut, summary="One model version")
async def get_model(project: ProjectName, version: Version, request: Request) -> ModelVersionOut:
    try:
        return _version_out(await registry.get_version(request.app.state.platform, project, version))
    except registry.VersionNotFound as exc:
        raise ApiError(404, "model-version-not-found", str(exc)) from None


@router.post(
    "/projects/{project}/models/{version}/promote", response_model=ModelVersionOut, summary="Make a version current"
)
async def promote(project: ProjectName, version: Version, request: Request) -> ModelVersionOut:
    try:
        return _version_out(await registry.promote(request.app.state.platform, project, version))
    except registry.VersionNotFound as exc:
        raise ApiError(404, "model-version-not-found", str(exc)) from None
