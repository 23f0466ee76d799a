"""MONAI Label server API on a medal project, so 3D Slicer and OHIF plugins work unchanged.

A client connects to ``http://host:8000/annotation/monailabel/<project>``. Paths, parameters and
response shapes follow ``monailabel.client.MONAILabelClient`` (monailabel 0.8): ``/info/``,
``/activelearning/{strategy}``, ``/datastore/`` (``?output=stats|ids|all``), ``/datastore/image``,
``/datastore/label`` (PUT with ``tag=final``, GET), ``/infer/{model}``, ``/train/`` (POST, DELETE, GET).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from medal.dependencies import CallerDep, PlatformDep, ProjectPath
from medal.errors import ApiError
from medal.platform import Platform
from proto.types import UUID_PATTERN
from services.annotation import monailabel_compat as compat
from services.annotation import service
from services.annotation.api import PNG

router = APIRouter(prefix="/monailabel/{project}", tags=["monai-label"])
ImageParam = Annotated[str, Query(pattern=UUID_PATTERN, description="medal image id")]
FORWARDED_HEADERS = ("x-api-key", "authorization", "x-request-id")


async def _json_params(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return {}
    try:
        params = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "bad-params", "the request body must be JSON params") from None
    return params if isinstance(params, dict) else {}


@router.get("/info/", summary="MONAI Label: the app's labels, models, strategies and datastore counts")
async def info(project: ProjectPath, platform: PlatformDep) -> dict[str, Any]:
    return await compat.info(platform, project)


@router.post("/activelearning/{strategy}", summary="MONAI Label: the next sample (leases the next task to the caller)")
async def next_sample(
    project: ProjectPath, strategy: str, request: Request, platform: PlatformDep, caller: CallerDep
) -> dict[str, Any]:
    await _json_params(request)  # MONAI Label's params (client_id …): the caller, not client_id, leases
    known = await compat.strategy_of(platform, project)
    if strategy != known:
        raise ApiError(404, "strategy-not-found", f"unknown strategy {strategy!r}; this project uses {known!r}")
    return await compat.next_sample(platform, project, caller.id)


@router.get("/datastore/", summary="MONAI Label: the datastore (output=stats, ids or all)")
async def datastore(
    project: ProjectPath,
    platform: PlatformDep,
    output: Annotated[str, Query(pattern=r"^(stats|ids|all)$")] = "stats",
) -> Any:
    return await compat.datastore(platform, project, output)


@router.get(
    "/datastore/image", response_class=Response, responses=PNG, summary="MONAI Label: download an image (8-bit PNG)"
)
async def image(project: ProjectPath, image: ImageParam, platform: PlatformDep) -> Response:
    png = await service.image_png(platform, image)
    headers = {"Content-Disposition": f'attachment; filename="{image}.png"'}
    return Response(png, media_type="image/png", headers=headers)


@router.put("/datastore/label", summary="MONAI Label: save a label (tag final submits the leased task)")
async def save_label(
    project: ProjectPath,
    image: ImageParam,
    request: Request,
    platform: PlatformDep,
    caller: CallerDep,
    tag: Annotated[str, Query(max_length=64)] = compat.FINAL_TAG,
) -> dict[str, Any]:
    if tag != compat.FINAL_TAG:
        raise ApiError(422, "unsupported-tag", f"only tag {compat.FINAL_TAG!r} is stored (medal keeps versions)")
    async with request.form(max_files=2, max_fields=8) as form:
        upload = form.get("label")  # the form's "params" (client_id …) are ignored: the caller is the author
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "no-label", "send the label file as the multipart field 'label'")
        data, filename = await upload.read(), upload.filename or ""
    mask = compat.decode_label(data, filename)
    saved = await compat.save_label(platform, project, image, caller.id, mask)
    return {
        "image": saved.image_id,
        "label": saved.image_id,
        "tag": compat.FINAL_TAG,
        "version": saved.version,
        "task_id": saved.task_id,
        "round_completed": saved.round_completed,
    }


@router.get(
    "/datastore/label", response_class=Response, responses=PNG, summary="MONAI Label: download an image's newest label"
)
async def download_label(
    project: ProjectPath,
    label: Annotated[str, Query(pattern=UUID_PATTERN, description="The image id")],
    platform: PlatformDep,
    tag: str = compat.FINAL_TAG,
) -> Response:
    version, png = await compat.label_png(platform, project, label)
    headers = {"Content-Disposition": f'attachment; filename="{label}_{tag}.png"', "ETag": f'"{version}"'}
    return Response(png, media_type="image/png", headers=headers)


def _service_url(request: Request, configured: str | None) -> str:
    """The other service's base URL: configured, or this process's own origin (embedded mode)."""
    return (configured or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")


def _forwarded(request: Request) -> dict[str, str]:
    return {name: value for name in FORWARDED_HEADERS if (value := request.headers.get(name))}


def _multipart(params: dict[str, Any], filename: str, data: bytes) -> Response:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n'.encode(),
        json.dumps(params).encode(),
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'.encode(),
        b"Content-Type: image/png\r\n\r\n",
        data,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return Response(b"".join(parts), media_type=f"multipart/form-data; boundary={boundary}")


@router.post("/infer/{model}", summary="MONAI Label: pre-annotate an image with the project's current model")
async def infer(
    project: ProjectPath,
    model: str,
    image: ImageParam,
    request: Request,
    platform: PlatformDep,
    output: Annotated[str, Query(pattern=r"^(all|image|json)$")] = "all",
) -> Response:
    if model != compat.MODEL_NAME:
        raise ApiError(404, "model-not-found", f"unknown model {model!r}; this app serves {compat.MODEL_NAME!r}")
    base = _service_url(request, platform.settings.inference_url)
    url = f"{base}/inference/v1/projects/{project}/predict"
    try:
        async with httpx.AsyncClient(timeout=120) as client:
            answer = await client.post(url, json={"image_id": image}, headers=_forwarded(request))
    except httpx.HTTPError:
        raise ApiError(503, "inference-unavailable", f"the inference service at {base} cannot be reached") from None
    if answer.status_code == 404 and "application/json" in answer.headers.get("content-type", ""):
        error = answer.json().get("error", {})
        if error.get("code") in (None, "not-found"):
            raise ApiError(503, "inference-unavailable", f"no inference service at {base}")
    if answer.status_code != 200:
        try:
            error = answer.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(502, "inference-failed", f"inference answered {answer.status_code}") from None
        raise ApiError(answer.status_code, error.get("code", "inference-failed"), error.get("message", ""))
    prediction = answer.json()
    png = base64.b64decode(prediction.pop("mask_png_base64"))
    params = {**prediction, "label_names": (await compat.info(platform, project))["labels"]}
    if output == "json":
        return JSONResponse(params)
    if output == "image":
        headers = {"Content-Disposition": f'attachment; filename="{image}_{model}.png"'}
        return Response(png, media_type="image/png", headers=headers)
    return _multipart(params, f"{image}_{model}.png", png)


async def _train_status(request: Request, platform: Platform, project: str) -> dict[str, Any]:
    state = await compat.training_state(platform, project)
    base = _service_url(request, platform.settings.trainer_url)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(f"{base}/trainer/v1/projects/{project}/jobs", headers=_forwarded(request))
        jobs = answer.json().get("jobs", []) if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        jobs = None
    if jobs is not None and state["id"] and state["failure"] is None:
        state["details"] = [j for j in jobs if j.get("round_id") == state["id"]]
    state["trainer_available"] = jobs is not None
    return state


@router.get(
    "/train/", response_model=None, summary="MONAI Label: training status (check_if_running: 200 only while training)"
)
async def train_status(
    project: ProjectPath, request: Request, platform: PlatformDep, check_if_running: bool = False
) -> dict[str, Any] | JSONResponse:
    state = await _train_status(request, platform, project)
    if check_if_running and state["status"] != "RUNNING":
        return JSONResponse({"status": state["status"]}, status_code=404)
    return state


@router.post("/train/", summary="MONAI Label: start training (retries a failed latest round, else closes the open one)")
@router.post(
    "/train/{model}", summary="MONAI Label: start training a model (retry a failed round, or close the open one)"
)
async def train_start(
    project: ProjectPath, request: Request, platform: PlatformDep, model: str = compat.MODEL_NAME
) -> dict[str, Any]:
    if model != compat.MODEL_NAME:
        raise ApiError(404, "model-not-found", f"unknown model {model!r}; this app trains {compat.MODEL_NAME!r}")
    await compat.start_training(platform, project)
    return await _train_status(request, platform, project)


@router.delete("/train/", summary="MONAI Label: stop training (a started committee round cannot be cancelled)")
async def train_stop(project: ProjectPath, platform: PlatformDep) -> dict[str, Any]:
    state = await compat.training_state(platform, project)
    if state["status"] == "RUNNING":
        raise ApiError(
            409,
            "training-not-cancellable",
            f"round {state['round']} is training; medal finishes a committee round once it started",
        )
    return state
