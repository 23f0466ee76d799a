"""MONAI Label's task routes on a medal project: ``/train``, ``/scoring``, ``/batch/infer``, ``/model``, ``/session``.

A task's status has MONAI Label's shape (``id``, ``type``, ``status`` NONE|RUNNING|DONE|ERROR, ``start_ts``,
``end_ts``, ``result``, ``details``); ``check_if_running=true`` answers 404 unless the task runs, as
MONAI Label does. A committee round, a scoring run or an auto-labelling job cannot be cancelled once
started: ``DELETE`` answers 409 while one runs, else the last status.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from medal.access import Action, Caller, require
from medal.dependencies import PlatformDep, ProjectPath
from medal.errors import ApiError
from medal.platform import Platform
from services.annotation import monailabel_compat as compat
from services.annotation import monailabel_sessions as sessions
from services.annotation import monailabel_tasks as ml
from services.annotation import peers

router = APIRouter(prefix="/monailabel/{project}", tags=["monai-label"])
Viewer = Annotated[Caller, Depends(require(Action.VIEW))]
Trainer = Annotated[Caller, Depends(require(Action.TRAIN))]
SessionUser = Annotated[Caller, Depends(require(Action.LABEL))]


def _task_answer(state: dict[str, Any], check_if_running: bool) -> dict[str, Any] | JSONResponse:
    if check_if_running and state["status"] != "RUNNING":
        return JSONResponse({"status": state["status"]}, status_code=404)
    return state


def _not_while_running(state: dict[str, Any], what: str) -> dict[str, Any]:
    if state["status"] == "RUNNING":
        raise ml.NotCancellable(f"{what} is running; medal finishes it once it started")
    return state


async def _train_status(request: Request, platform: Platform, project: str) -> dict[str, Any]:
    state = await compat.training_state(platform, project)
    base = peers.service_url(request, platform, "trainer", platform.settings.trainer_url)
    try:
        async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
            answer = await client.get(f"{base}/trainer/v1/projects/{project}/jobs", headers=peers.forwarded(request))
        jobs = answer.json().get("jobs", []) if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        jobs = None
    if jobs is not None and state["id"] and state["failure"] is None:
        state["details"] = [j for j in jobs if j.get("round_id") == state["id"]]
    state["trainer_available"] = jobs is not None
    return state


@router.get(
    "/train/", response_model=None, summary="MONAI Label: training status (check_if_running: 404 unless training)"
)
async def train_status(
    project: ProjectPath, request: Request, platform: PlatformDep, caller: Viewer, check_if_running: bool = False
) -> dict[str, Any] | JSONResponse:
    return _task_answer(await _train_status(request, platform, project), check_if_running)


@router.post("/train/", summary="MONAI Label: start training (retries a failed latest round, else closes the open one)")
@router.post(
    "/train/{model}", summary="MONAI Label: start training a model (retry a failed round, or close the open one)"
)
async def train_start(
    project: ProjectPath, request: Request, platform: PlatformDep, caller: Trainer, model: str = compat.MODEL_NAME
) -> dict[str, Any]:
    if model != compat.MODEL_NAME:
        raise ApiError(404, "model-not-found", f"unknown model {model!r}; this app trains {compat.MODEL_NAME!r}")
    await compat.start_training(platform, project)
    return await _train_status(request, platform, project)


@router.delete("/train/", summary="MONAI Label: stop training (a started committee round cannot be cancelled)")
async def train_stop(project: ProjectPath, platform: PlatformDep, caller: Trainer) -> dict[str, Any]:
    state = await compat.training_state(platform, project)
    if state["status"] == "RUNNING":
        raise ApiError(
            409,
            "training-not-cancellable",
            f"round {state['round']} is training; medal finishes a committee round once it started",
        )
    return state


@router.get("/scoring/", response_model=None, summary="MONAI Label: the pool's scoring with the current model")
async def scoring_status(
    project: ProjectPath, platform: PlatformDep, caller: Viewer, check_if_running: bool = False
) -> dict[str, Any] | JSONResponse:
    return _task_answer(await ml.scoring_state(platform, project), check_if_running)


@router.post("/scoring/", summary="MONAI Label: score the pool (deprecated path)", include_in_schema=False)
@router.post("/scoring/{method}", summary="MONAI Label: score the unlabelled pool with the project's strategy")
async def scoring_run(
    project: ProjectPath,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(require(Action.ROUNDS))],
    method: str | None = None,
) -> dict[str, Any]:
    strategy = await compat.strategy_of(platform, project)
    if method is not None and method != strategy:
        raise ApiError(
            404, "scoring-method-not-found", f"unknown scoring method {method!r}; this project uses {strategy!r}"
        )
    return await ml.start_scoring(platform, project)


@router.delete("/scoring/", summary="MONAI Label: stop scoring (a started ranking finishes)")
async def scoring_stop(
    project: ProjectPath, platform: PlatformDep, caller: Annotated[Caller, Depends(require(Action.ROUNDS))]
) -> dict[str, Any]:
    return _not_while_running(await ml.scoring_state(platform, project), "ranking the pool")


@router.get("/batch/infer", response_model=None, summary="MONAI Label: the auto-labelling status")
async def batch_status(
    project: ProjectPath, platform: PlatformDep, caller: Viewer, check_if_running: bool = False
) -> dict[str, Any] | JSONResponse:
    return _task_answer(await ml.batch_state(platform, project), check_if_running)


@router.post("/batch/infer/{model}", summary="MONAI Label: label every unlabelled image with the current model")
async def batch_run(
    project: ProjectPath,
    model: str,
    platform: PlatformDep,
    caller: Trainer,
    images: Annotated[str, Query(pattern=r"^(all|labeled|unlabeled)$")] = "all",
) -> dict[str, Any]:
    if model != compat.MODEL_NAME:
        raise ApiError(404, "model-not-found", f"unknown model {model!r}; this app serves {compat.MODEL_NAME!r}")
    job = await ml.batch_infer(platform, project, images)
    return await ml.batch_state(platform, project) | {"job": job.model_dump(mode="json")}


@router.delete("/batch/infer", summary="MONAI Label: stop auto-labelling (a queued job finishes)")
async def batch_stop(project: ProjectPath, platform: PlatformDep, caller: Trainer) -> dict[str, Any]:
    return _not_while_running(await ml.batch_state(platform, project), "auto-labelling")


@router.get("/model/info/{model}", summary="MONAI Label: the current model's checksum and time")
async def model_info(
    project: ProjectPath, model: str, platform: PlatformDep, caller: Annotated[Caller, Depends(require(Action.MODELS))]
) -> dict[str, Any]:
    return await ml.model_info(platform, project, model)


@router.get(
    "/model/{model}",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
    summary="MONAI Label: download the current model (the committee's weights, zipped)",
)
async def download_model(
    project: ProjectPath, model: str, platform: PlatformDep, caller: Annotated[Caller, Depends(require(Action.MODELS))]
) -> Response:
    version, data = await ml.model_file(platform, project, model)
    headers = {"Content-Disposition": f'attachment; filename="{model}-v{version}.zip"'}
    return Response(data, media_type="application/zip", headers=headers)


@router.put("/session/", summary="MONAI Label: a session with an uploaded image, for inference only")
async def create_session(
    project: ProjectPath,
    request: Request,
    platform: PlatformDep,
    caller: SessionUser,
    expiry: Annotated[int, Query(ge=0)] = 0,
    uncompress: bool = False,
) -> dict[str, Any]:
    limit = platform.settings.monailabel_session_max_bytes
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit + 64 * 1024:
        raise sessions.SessionTooLarge(f"a session image may hold at most {limit} bytes")
    async with request.form(max_files=1, max_fields=8, max_part_size=1024 * 1024) as form:
        upload = next((f for f in form.getlist("files") if isinstance(f, UploadFile)), None)
        if upload is None:
            raise ApiError(404, "no-image", "Image(s) Not Found: send the image as the multipart field 'files'")
        data = await upload.read(limit + 1)
        name = upload.filename or "image"
    session = await sessions.create(platform, project, name, data, expiry)
    return {"session_id": session.id, "session_info": session.to_json()}


@router.get("/session/{session_id}", response_model=None, summary="MONAI Label: a session (image=true: its image)")
async def get_session(
    project: ProjectPath,
    session_id: str,
    platform: PlatformDep,
    caller: SessionUser,
    update_ts: bool = False,
    image: bool = False,
) -> dict[str, Any] | Response:
    session = await sessions.get(platform, project, session_id, update_ts=update_ts)
    if image:
        return Response(await sessions.image(platform, session), media_type="image/png")
    return session.to_json()


@router.delete("/session/{session_id}", summary="MONAI Label: end a session (its image is deleted)")
async def remove_session(
    project: ProjectPath, session_id: str, platform: PlatformDep, caller: SessionUser
) -> dict[str, Any]:
    return (await sessions.remove(platform, project, session_id)).to_json()
