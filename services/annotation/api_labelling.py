"""Annotation routes for labelling: rounds, task leases, masks, models and auto-labelling.

The caller (authenticated by the API key, or the local user) is who leases, submits, skips and edits.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from medal.dependencies import CallerDep, IdPath, PlatformDep, ProjectPath
from medal.errors import ApiError
from services.annotation import exports, labelling, loop_events, mask_codec, retries, tasks
from services.annotation.api import PNG
from services.annotation.mask_codec import InvalidMask, Mask
from services.annotation.records import (
    AutoLabelJob,
    Lease,
    MaskInfo,
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
async def start_round(project: ProjectPath, platform: PlatformDep) -> Round:
    return await labelling.start_round(platform, project)


@router.get("/projects/{project}/rounds", response_model=list[Round], summary="A project's rounds")
async def list_rounds(project: ProjectPath, platform: PlatformDep) -> list[Round]:
    return await labelling.list_rounds(platform, project)


@router.post(
    "/projects/{project}/rounds/{round_id}/retry",
    response_model=Round,
    status_code=202,
    summary="Train a round whose training failed again, on today's labels (409 round-not-failed otherwise)",
)
async def retry_round(project: ProjectPath, round_id: IdPath, platform: PlatformDep) -> Round:
    """Any authenticated caller may retry for now (every route passes the caller check); roles come later."""
    return await retries.retry_round(platform, project, round_id)


@router.post("/rounds/{round_id}/close", status_code=204, summary="End a round early and train on what is labelled")
async def close_round(round_id: IdPath, platform: PlatformDep) -> Response:
    await labelling.close_round(platform, round_id)
    return Response(status_code=204)


@router.post(
    "/projects/{project}/tasks/lease",
    response_model=Lease,
    summary="Lease the next image to label to the caller (held for the project's lease time)",
)
async def lease_task(project: ProjectPath, platform: PlatformDep, caller: CallerDep) -> Lease:
    return await labelling.lease(platform, project, caller.id)


@router.post(
    "/tasks/{task_id}/mask",
    response_model=MaskSaved,
    summary="Submit the mask of a task leased to the caller",
    description="Body: a PNG of class indices (image/png) or RLE JSON. Header X-Lease-Token from the lease.",
)
async def submit_mask(
    task_id: IdPath, request: Request, platform: PlatformDep, caller: CallerDep, x_lease_token: LeaseToken
) -> MaskSaved:
    mask = await _mask_from_body(request)
    return await tasks.submit(platform, task_id, x_lease_token, caller.id, mask)


@router.post("/tasks/{task_id}/skip", status_code=204, summary="Give a task leased to the caller back without a mask")
async def skip_task(task_id: IdPath, platform: PlatformDep, caller: CallerDep, x_lease_token: LeaseToken) -> Response:
    await tasks.skip(platform, task_id, x_lease_token, caller.id)
    return Response(status_code=204)


@router.get(
    "/images/{image_id}/mask",
    response_class=Response,
    responses=PNG,
    summary="The newest mask of an image (ETag = its version)",
)
async def get_mask(image_id: IdPath, platform: PlatformDep) -> Response:
    version, png, machine, confidence, model = await tasks.current_mask(platform, image_id)
    headers = {"ETag": f'"{version}"', "X-Mask-Machine-Made": "true" if machine else "false"}
    if confidence is not None:
        headers["X-Mask-Confidence"] = f"{confidence:.4f}"
    if model:
        headers["X-Mask-Model-Version"] = model
    return Response(png, media_type="image/png", headers=headers)


@router.put(
    "/images/{image_id}/mask",
    response_model=MaskSaved,
    summary="Save a corrected mask as the caller (If-Match: the version you edited, 0 for none)",
)
async def put_mask(
    image_id: IdPath,
    request: Request,
    platform: PlatformDep,
    caller: CallerDep,
    if_match: Annotated[str | None, Header()] = None,
) -> MaskSaved:
    if if_match is None:
        raise ApiError(428, "if-match-required", "send If-Match with the mask version you edited (0 for none)")
    try:
        expected = int(if_match.strip().strip('"'))
    except ValueError:
        raise ApiError(400, "bad-if-match", "If-Match must be a mask version number") from None
    mask = await _mask_from_body(request)
    return await tasks.edit_mask(platform, image_id, expected, caller.id, mask)


@router.get("/projects/{project}/models", response_model=list[ModelVersion], summary="Model versions (learning curve)")
async def list_models(project: ProjectPath, platform: PlatformDep) -> list[ModelVersion]:
    return await labelling.list_models(platform, project)


@router.post(
    "/projects/{project}/autolabel",
    response_model=AutoLabelJob,
    status_code=202,
    summary="Label every unlabelled image with a model (default: the current one)",
)
async def autolabel(project: ProjectPath, body: AutoLabelRequest, platform: PlatformDep) -> AutoLabelJob:
    return await loop_events.request_autolabel(platform, project, body.model_version_id)


@router.get(
    "/projects/{project}/status",
    response_model=ProjectStatus,
    summary="Labels, rounds, models, a training failure to fix, auto-labelling",
)
async def project_status(project: ProjectPath, platform: PlatformDep) -> ProjectStatus:
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
    format: Annotated[str, Query(pattern=r"^(png|coco|nifti|dicom-seg)$")] = "png",
) -> Response:
    spool = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115 (closed by the stream)
    try:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
            summary = await exports.export_to(platform, project, format, exports.zip_sink(archive))
            archive.writestr("export.json", json.dumps(vars(summary), indent=2))
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


@router.get(
    "/projects/{project}/masks",
    response_model=list[MaskInfo],
    summary="Each image's newest mask; machine-made ones least confident first (spot-check those)",
)
async def list_masks(
    project: ProjectPath, platform: PlatformDep, machine_made: Annotated[bool | None, Query()] = None
) -> list[MaskInfo]:
    return await labelling.newest_masks(platform, project, machine_made=machine_made)
