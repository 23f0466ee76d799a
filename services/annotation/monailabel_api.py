"""MONAI Label server API on a medal project, so 3D Slicer and OHIF plugins work unchanged.

A client connects to ``http://host:8000/annotation/monailabel/<project>``. Paths, methods, parameters,
status codes and body shapes follow monailabel 0.8.5's server (``monailabel/endpoints``) and its client
``MONAILabelClient``; docs/monailabel.md lists every route with medal's behaviour. This module holds
``/info/``, ``/activelearning``, ``/datastore`` and ``/infer``; :mod:`monailabel_routes` the tasks (train,
scoring, batch inference), the model file and sessions; :mod:`monailabel_auth` the sign-in routes. Every
route declares the medal action it performs (``require``): what MONAI Label calls an annotator's may be a
project admin's in medal (adding images, downloading the data set).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
import zipfile
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from medal.access import Action, Caller, require
from medal.dependencies import PlatformDep, ProjectPath
from medal.errors import ApiError
from medal.platform import Platform
from proto.types import UUID_PATTERN
from services.annotation import exports, peers
from services.annotation import monailabel_compat as compat
from services.annotation import monailabel_sessions as sessions
from services.annotation import monailabel_tasks as ml
from services.annotation.api import PNG
from services.annotation.ingest_client import IngestClient

router = APIRouter(prefix="/monailabel/{project}", tags=["monai-label"])
ImageParam = Annotated[str, Query(pattern=UUID_PATTERN, description="medal image id")]
Viewer = Annotated[Caller, Depends(require(Action.VIEW))]
Annotator = Annotated[Caller, Depends(require(Action.LABEL))]
MAX_IMAGE_UPLOAD_FILES = 64


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
async def info(project: ProjectPath, platform: PlatformDep, caller: Viewer) -> dict[str, Any]:
    return await compat.info(platform, project)


@router.post(
    "/activelearning/{strategy}",
    summary="MONAI Label: the next sample (leases the next task; a project without a round starts its first)",
)
async def next_sample(
    project: ProjectPath,
    strategy: str,
    request: Request,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(require(Action.LEASE))],
) -> dict[str, Any]:
    await _json_params(request)  # MONAI Label's params (client_id …): the caller, not client_id, leases
    known = await compat.strategy_of(platform, project)
    if strategy != known:
        raise ApiError(404, "strategy-not-found", f"unknown strategy {strategy!r}; this project uses {known!r}")
    return await ml.next_sample_starting(platform, project, caller.id)


@router.get("/datastore/", summary="MONAI Label: the datastore (output=stats, all or train; ids: medal's list)")
async def datastore(
    project: ProjectPath,
    platform: PlatformDep,
    caller: Viewer,
    output: Annotated[str, Query(pattern=r"^(stats|ids|all|train)$")] = "stats",
) -> Any:
    if output == "train":
        return await ml.datalist(platform, project)
    return await compat.datastore(platform, project, output)


@router.head("/datastore/image", summary="MONAI Label: does the image exist (and match check_sum)")
async def check_image(
    project: ProjectPath, image: str, platform: PlatformDep, caller: Viewer, check_sum: str | None = None
) -> Response:
    data = await ml.image_of(platform, project, _image_id(image))
    ml.check(data, check_sum)
    return Response(status_code=200, media_type="image/png", headers=ml.checksum_headers(data))


@router.get("/datastore/image", response_class=Response, responses=PNG, summary="MONAI Label: download an image")
async def download_image(project: ProjectPath, image: str, platform: PlatformDep, caller: Viewer) -> Response:
    image_id = _image_id(image)
    data = await ml.image_of(platform, project, image_id)
    headers = {"Content-Disposition": f'attachment; filename="{image_id}.png"', **ml.checksum_headers(data)}
    return Response(data, media_type="image/png", headers=headers)


def _image_id(image: str) -> str:
    """MONAI Label names images by id, sometimes with the file's extension."""
    image_id = image.removesuffix(".png")
    compat.check_image_id(image_id)
    return image_id


@router.put("/datastore/image", summary="MONAI Label: add an image (DICOM, through ingest's de-identification)")
@router.put("/datastore/", summary="MONAI Label: add an image (deprecated path)", include_in_schema=False)
async def add_image(
    project: ProjectPath,
    request: Request,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(require(Action.INGEST))],
    image: str | None = None,
) -> dict[str, Any]:
    """``image`` (MONAI Label's wished-for id) is ignored: medal names images by the instance they come from."""
    async with request.form(max_files=MAX_IMAGE_UPLOAD_FILES, max_fields=8) as form:
        uploads = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
        if not uploads:
            raise ApiError(400, "no-file", "send the image as the multipart field 'file'")
        files = [(f"{n}.dcm", await f.read()) for n, f in enumerate(uploads)]
    if not all(len(data) > 132 and data[128:132] == b"DICM" for _name, data in files):
        raise ApiError(415, "dicom-required", "medal adds DICOM Part-10 files only: every image is de-identified")
    report = await IngestClient.for_request(request, platform).upload_instances(project, files)
    results = report.get("results", [])
    image_ids = [i for r in results for i in r.get("image_ids", [])]
    if not image_ids:
        refused: dict[str, Any] = next((r for r in results if r.get("outcome") not in ("accepted", "duplicate")), {})
        code, reason = refused.get("code") or "refused", refused.get("reason") or refused.get("outcome", "refused")
        raise ApiError(422, "image-refused", f"ingest did not add the image ({code}: {reason})")
    return {"image": image_ids[0], "images": image_ids, "results": results}


@router.put("/datastore/label", summary="MONAI Label: save a label (tag final submits the leased task)")
async def save_label(
    project: ProjectPath,
    image: ImageParam,
    request: Request,
    platform: PlatformDep,
    caller: Annotator,
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


@router.head("/datastore/label", summary="MONAI Label: does the image have a label with this tag")
async def check_label(
    project: ProjectPath, image: ImageParam, tag: str, platform: PlatformDep, caller: Viewer
) -> Response:
    version, png = await ml.label_of(platform, project, image, tag)
    headers = {**ml.checksum_headers(png), "X-Label-Version": str(version)}
    return Response(status_code=200, media_type="image/png", headers=headers)


@router.get("/datastore/label", response_class=Response, responses=PNG, summary="MONAI Label: download a label")
async def download_label(
    project: ProjectPath,
    label: Annotated[str, Query(pattern=UUID_PATTERN, description="The image id")],
    platform: PlatformDep,
    caller: Viewer,
    tag: str = compat.FINAL_TAG,
) -> Response:
    version, png = await ml.label_of(platform, project, label, tag)
    headers = {"Content-Disposition": f'attachment; filename="{label}_{tag}.png"', **ml.checksum_headers(png)}
    return Response(png, media_type="image/png", headers=headers | {"X-Label-Version": str(version)})


@router.get(
    "/datastore/dataset",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
    summary="MONAI Label: the labelled data set as a zip (medal's png export)",
)
async def download_dataset(
    project: ProjectPath,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(require(Action.EXPORT))],
    limit_cases: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    record, items = await exports.collect(platform, project)
    labelled = [item for item in items if item.mask_key is not None][:limit_cases]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        summary = await asyncio.to_thread(
            exports.write_export,
            platform.store,
            record.settings,
            record.name,
            labelled,
            "png",
            exports.zip_sink(archive),
        )
        archive.writestr("export.json", json.dumps(vars(summary), indent=2))
    headers = {"Content-Disposition": 'attachment; filename="dataset.zip"'}
    return Response(buffer.getvalue(), media_type="application/zip", headers=headers)


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


async def _predict(request: Request, platform: Platform, project: str, body: dict[str, Any]) -> dict[str, Any]:
    base = peers.service_url(request, platform, "inference", platform.settings.inference_url)
    url = f"{base}/inference/v1/projects/{project}/predict"
    try:
        async with httpx.AsyncClient(timeout=120, follow_redirects=False) as client:
            answer = await client.post(url, json=body, headers=peers.forwarded(request))
    except httpx.HTTPError:
        raise ApiError(503, "inference-unavailable", f"the inference service at {base} cannot be reached") from None
    if peers.is_missing_service(answer):
        raise ApiError(503, "inference-unavailable", f"no inference service at {base}")
    if answer.status_code != 200:
        raise peers.refusal("inference", base, answer)
    prediction: dict[str, Any] = answer.json()
    return prediction


@router.post("/infer/{model}", summary="MONAI Label: pre-annotate an image (or a session's) with the current model")
async def infer(
    project: ProjectPath,
    model: str,
    image: str,
    request: Request,
    platform: PlatformDep,
    caller: Annotator,
    output: Annotated[str, Query(pattern=r"^(all|image|json)$")] = "all",
    session_id: str | None = None,
) -> Response:
    if model != compat.MODEL_NAME:
        raise ApiError(404, "model-not-found", f"unknown model {model!r}; this app serves {compat.MODEL_NAME!r}")
    if session_id:
        session = await sessions.get(platform, project, session_id, update_ts=True)
        body: dict[str, Any] = {"session_key": session.image_key}
    else:
        body = {"image_id": _image_id(image)}
    prediction = await _predict(request, platform, project, body)
    png = base64.b64decode(prediction.pop("mask_png_base64"))
    params = {**prediction, "label_names": (await compat.info(platform, project))["labels"]}
    if output == "json":
        return JSONResponse(params)
    if output == "image":
        headers = {"Content-Disposition": f'attachment; filename="{image}_{model}.png"'}
        return Response(png, media_type="image/png", headers=headers)
    return _multipart(params, f"{image}_{model}.png", png)
