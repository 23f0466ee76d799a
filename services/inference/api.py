"""Inference routes: compute info and pre-annotation (predict one image)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool

from medal.compute import compute_info
from medal.errors import ApiError
from medal.model.committees import CommitteeCache
from services.inference import service
from services.inference.schemas import PROJECT_PATTERN, PredictionOut, PredictRequest

router = APIRouter(prefix="/v1", tags=["inference"])
ProjectName = Annotated[str, Path(pattern=PROJECT_PATTERN)]


@router.get("/info", summary="Version and the compute this worker pool runs on")
async def info() -> dict[str, Any]:
    return {"service": "inference", "compute": await run_in_threadpool(compute_info)}


def _committees(request: Request) -> CommitteeCache:
    """The app's committee cache (one per process), made on the first prediction."""
    state = request.app.state
    cache: CommitteeCache | None = getattr(state, "committees", None)
    if cache is None:
        platform = state.platform
        cache = CommitteeCache(lambda key: platform.store.get(key))
        state.committees = cache
    return cache


@router.post(
    "/projects/{project}/predict",
    response_model=PredictionOut,
    summary="Predict one image's mask (pre-annotation) with a chosen or the current model version",
)
async def predict(project: ProjectName, body: PredictRequest, request: Request) -> PredictionOut:
    platform = request.app.state.platform
    chosen = None if body.model_version_id is None else str(body.model_version_id)
    try:
        result = await service.predict_image(platform, _committees(request), project, str(body.image_id), chosen)
    except service.ImageNotFound:
        raise ApiError(404, "image-not-found", f"no image {body.image_id} in project {project}") from None
    except service.ModelNotFound:
        raise ApiError(404, "model-not-found", f"no model version {chosen} in project {project}") from None
    except service.NoModel:
        raise ApiError(409, "no-model", f"project {project} has no model yet") from None
    return PredictionOut(
        model_version_id=result.model_version_id,
        version=result.version,
        confidence=result.confidence,
        width=result.width,
        height=result.height,
        mask_png_base64=base64.b64encode(result.mask_png).decode("ascii"),
    )
