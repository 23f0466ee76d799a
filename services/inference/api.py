"""Inference routes: compute info and pre-annotation (predict one image)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from medal.access import Action, Caller, require
from medal.compute import compute_info
from medal.dependencies import PlatformDep, ProjectPath
from medal.model.committees import CommitteeCache, committees_of
from services.inference import service
from services.inference.schemas import PredictionOut, PredictRequest

router = APIRouter(prefix="/v1", tags=["inference"])


def get_committees(platform: PlatformDep) -> CommitteeCache:
    """The process's committee cache (the same one the inference consumer uses)."""
    return committees_of(platform)


CommitteesDep = Annotated[CommitteeCache, Depends(get_committees)]


@router.get("/info", summary="Version and the compute this worker pool runs on")
async def info() -> dict[str, Any]:
    return {"service": "inference", "compute": await run_in_threadpool(compute_info)}


@router.post(
    "/projects/{project}/predict",
    summary="Predict one image's mask (pre-annotation) with a chosen or the current model version",
    description="For a person labelling the image: the suggestion is recorded in the audit trail with its model.",
)
async def predict(
    project: ProjectPath,
    body: PredictRequest,
    platform: PlatformDep,
    committees: CommitteesDep,
    caller: Annotated[Caller, Depends(require(Action.LABEL))],
) -> PredictionOut:
    chosen = None if body.model_version_id is None else str(body.model_version_id)
    if body.session_key is not None:
        return await service.predict_session(platform, committees, project, body.session_key, chosen)
    return await service.predict_image(platform, committees, project, str(body.image_id), chosen, caller)
