"""Annotation routes for labelling: rounds, task leases, masks, models and auto-labelling.

The caller (authenticated by a key or a token, or the local user) is who leases, submits, skips and edits;
each route declares the right it needs (``require``); the mask routes are in :mod:`api_masks`.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from medal.access import Action, Caller
from medal.dependencies import IdPath, PlatformDep, ProjectPath
from medal.errors import ApiError
from services.annotation import exports, labelling, loop_events, mask_codec, retries, tasks
from services.annotation.mask_codec import InvalidMask, Mask
from services.annotation.ownership import ProjectViewer, in_project, on_round, on_task
from services.annotation.records import (
    AutoLabelJob,
    Lease,
    MaskSaved,
    ModelVersion,
    ProjectStatus,
    Round,
)
from services.annotation.schemas import AutoLabelRequest

router = APIRouter(prefix="/v1", tags=["labelling"])
MAX_MASK_BYTES = 64 * 1024 * 1024
LeaseToken = Annotated[str, Header(description="The lease_token of your lease")]


async def _mask_from_body(request: Request) -> Mask:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_MASK_BYTES:
        raise ApiError(413, "payload-too-large", f"mask body over {MAX_MASK_BYTES} bytes")
    if content_type == "image/png":
        return mask_codec.decode_png(body)
    if content_type == "application/json":
        try:
            document = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidMask("mask JSON cannot be parsed") from None
        if not isinstance(document, dict):
            raise InvalidMask("mask JSON must be an object")
        return mask_codec.decode_rle(document)
    raise ApiError(415, "unsupported-media-type", "send the mask as image/png or application/json (RLE)")


@router.post(
    "/projects/{project}/rounds", response_model=Round, status_code=201, summary="Start labelling: the cold-start round"
)
async def start_round(
    project: ProjectPath, platform: PlatformDep, caller: Annotated[Caller, in_project(Action.ROUNDS)]
) -> Round:
    return await labelling.start_round(platform, project, caller)


@router.get("/projects/{project}/rounds", response_model=list[Round], summary="A project's rounds")
async def list_rounds(project: ProjectPath, platform: PlatformDep, _: ProjectViewer) -> list[Round]:
    return await labelling.list_rounds(platform, project)


@router.post(
    "/projects/{project}/rounds/{round_id}/retry",
    response_model=Round,
    status_code=202,
    summary="Train a round whose training failed again, on today's labels (409 round-not-failed otherwise)",
)
async def retry_round(
    project: ProjectPath, round_id: IdPath, platform: PlatformDep, caller: Annotated[Caller, in_project(Action.TRAIN)]
) -> Round:
    return await retries.retry_round(platform, project, round_id, caller)


@router.post("/rounds/{round_id}/close", status_code=204, summary="End a round early and train on what is labelled")
async def close_round(
    round_id: IdPath, platform: PlatformDep, caller: Annotated[Caller, on_round(Action.ROUNDS)]
) -> Response:
    await labelling.close_round(platform, round_id, caller)
    return Response(status_code=204)


@router.post(
    "/projects/{project}/tasks/lease",
    response_model=Lease,
    summary="Lease the next image to label to the caller (held for the project's lease time)",
)
async def lease_task(
    project: ProjectPath, platform: PlatformDep, caller: Annotated[Caller, in_project(Action.LEASE)]
) -> Lease:
    return await labelling.lease(platform, project, caller)


@router.post(
    "/tasks/{task_id}/mask",
    response_model=MaskSaved,
    summary="Submit the mask of a task leased to the caller",
    description="Body: a PNG of class indices (image/png) or RLE JSON. Header X-Lease-Token from the lease.",
)
async def submit_mask(
    task_id: IdPath,
    request: Request,
    platform: PlatformDep,
    caller: Annotated[Caller, on_task(Action.LABEL)],
    x_lease_token: LeaseToken,
) -> MaskSaved:
    mask = await _mask_from_body(request)
    return await tasks.submit(platform, task_id, x_lease_token, caller, mask)


@router.post("/tasks/{task_id}/skip", status_code=204, summary="Give a task leased to the caller back without a mask")
async def skip_task(
    task_id: IdPath,
    platform: PlatformDep,
    caller: Annotated[Caller, on_task(Action.SKIP_OWN)],
    x_lease_token: LeaseToken,
) -> Response:
    await tasks.skip(platform, task_id, x_lease_token, caller)
    return Response(status_code=204)


@router.get("/projects/{project}/models", response_model=list[ModelVersion], summary="Model versions (learning curve)")
async def list_models(project: ProjectPath, platform: PlatformDep, _: ProjectViewer) -> list[ModelVersion]:
    return await labelling.list_models(platform, project)


@router.post(
    "/projects/{project}/autolabel",
    response_model=AutoLabelJob,
    status_code=202,
    summary="Label every unlabelled image with a model (default: the current one)",
)
async def autolabel(
    project: ProjectPath,
    body: AutoLabelRequest,
    platform: PlatformDep,
    caller: Annotated[Caller, in_project(Action.TRAIN)],
) -> AutoLabelJob:
    return await loop_events.request_autolabel(platform, project, body.model_version_id, caller)


@router.get(
    "/projects/{project}/status",
    response_model=ProjectStatus,
    summary="Labels, rounds, models, a training failure to fix, auto-labelling",
)
async def project_status(project: ProjectPath, platform: PlatformDep, _: ProjectViewer) -> ProjectStatus:
    return await labelling.status(platform, project)


@router.get(
    "/projects/{project}/export",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
    summary="Download the labelled data set as a zip (png, coco, nifti or dicom-seg)",
)
async def export(
    project: ProjectPath,
    platform: PlatformDep,
    caller: Annotated[Caller, in_project(Action.EXPORT)],
    format: Annotated[str, Query(pattern=r"^(png|coco|nifti|dicom-seg)$")] = "png",
) -> Response:
    spool = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115 (closed by the stream)
    try:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
            summary = await exports.export_to(platform, project, format, exports.zip_sink(archive))
            archive.writestr("export.json", json.dumps(vars(summary), indent=2))
        await exports.record_export(platform, caller, project, summary)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        with spool:
            while chunk := spool.read(1024 * 1024):
                yield chunk

    headers = {"Content-Disposition": f'attachment; filename="{project}-{format}.zip"'}
    return StreamingResponse(chunks(), media_type="application/zip", headers=headers)
