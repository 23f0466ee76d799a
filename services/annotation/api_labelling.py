"""Annotation routes for labelling: rounds, task leases, masks, models and auto-labelling."""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from medal.errors import ApiError
from services.annotation import exports, labelling, loop_events, mask_codec, tasks
from services.annotation.mask_codec import InvalidMask, Mask
from services.annotation.projects import ProjectNotFound
from services.annotation.rounds import RoundConflict
from services.annotation.schemas import (
    PROJECT_PATTERN,
    UUID_PATTERN,
    AutoLabelOut,
    AutoLabelRequest,
    LeaseRequest,
    LeaseResponse,
    MaskOut,
    MaskSaved,
    ModelOut,
    ProjectStatus,
    RoundOut,
    TaskOut,
)

router = APIRouter(prefix="/v1", tags=["labelling"])
ProjectName = Annotated[str, Path(pattern=PROJECT_PATTERN)]
Id = Annotated[str, Path(pattern=UUID_PATTERN)]
MAX_MASK_BYTES = 64 * 1024 * 1024


def _project_missing(project: str) -> ApiError:
    return ApiError(404, "project-not-found", f"no project named {project}")


async def _mask_from_body(request: Request) -> Mask:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_MASK_BYTES:
        raise ApiError(413, "payload-too-large", f"mask body over {MAX_MASK_BYTES} bytes")
    try:
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
    except InvalidMask as exc:
        raise ApiError(422, "invalid-mask", str(exc)) from None
    raise ApiError(415, "unsupported-media-type", "send the mask as image/png or application/json (RLE)")


@router.post(
    "/projects/{project}/rounds",
    response_model=RoundOut,
    status_code=201,
    summary="Start labelling: the cold-start round",
)
async def start_round(project: ProjectName, request: Request) -> RoundOut:
    try:
        info = await labelling.start_round(request.app.state.platform, project)
    except ProjectNotFound:
        raise _project_missing(project) from None
    except RoundConflict as exc:
        raise ApiError(409, exc.code, str(exc)) from None
    return RoundOut(**vars(info))


@router.get("/projects/{project}/rounds", response_model=list[RoundOut], summary="A project's rounds")
async def list_rounds(project: ProjectName, request: Request) -> list[RoundOut]:
    try:
        return [RoundOut(**vars(r)) for r in await labelling.list_rounds(request.app.state.platform, project)]
    except ProjectNotFound:
        raise _project_missing(project) from None


@router.post("/rounds/{round_id}/close", status_code=204, summary="End a round early and train on what is labelled")
async def close_round(round_id: Id, request: Request) -> Response:
    try:
        await labelling.close_round(request.app.state.platform, round_id)
    except RoundConflict as exc:
        raise ApiError(404 if exc.code == "round-not-found" else 409, exc.code, str(exc)) from None
    return Response(status_code=204)


@router.post(
    "/projects/{project}/tasks/lease",
    response_model=LeaseResponse,
    summary="Lease the next image to label (held for the project's lease time)",
)
async def lease_task(project: ProjectName, body: LeaseRequest, request: Request) -> LeaseResponse:
    try:
        leased, state = await labelling.lease(request.app.state.platform, project, body.annotator)
    except ProjectNotFound:
        raise _project_missing(project) from None
    return LeaseResponse(task=TaskOut(**vars(leased)) if leased else None, status=state)  # type: ignore[arg-type]


@router.post(
    "/tasks/{task_id}/mask",
    response_model=MaskSaved,
    summary="Submit the mask of a leased task",
    description="Body: a PNG of class indices (image/png) or RLE JSON. Header X-Lease-Token from the lease.",
)
async def submit_mask(task_id: Id, request: Request, x_lease_token: Annotated[str, Header()]) -> MaskSaved:
    mask = await _mask_from_body(request)
    try:
        saved = await tasks.submit(request.app.state.platform, task_id, x_lease_token, mask)
    except tasks.TaskNotFound:
        raise ApiError(404, "task-not-found", f"no task {task_id}") from None
    except tasks.TaskConflict as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    except InvalidMask as exc:
        raise ApiError(422, "invalid-mask", str(exc)) from None
    return MaskSaved(image_id=saved.image_id, version=saved.version, round_completed=saved.round_completed)


@router.post("/tasks/{task_id}/skip", status_code=204, summary="Give a leased task back without a mask")
async def skip_task(task_id: Id, request: Request, x_lease_token: Annotated[str, Header()]) -> Response:
    try:
        await tasks.skip(request.app.state.platform, task_id, x_lease_token)
    except tasks.TaskNotFound:
        raise ApiError(404, "task-not-found", f"no task {task_id}") from None
    except tasks.TaskConflict as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    return Response(status_code=204)


@router.get(
    "/images/{image_id}/mask",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    summary="The newest mask of an image (ETag = its version)",
)
async def get_mask(image_id: Id, request: Request) -> Response:
    try:
        version, png, machine, confidence, model = await tasks.current_mask(request.app.state.platform, image_id)
    except tasks.TaskNotFound:
        raise ApiError(404, "mask-not-found", f"image {image_id} has no mask") from None
    headers = {"ETag": f'"{version}"', "X-Mask-Machine-Made": "true" if machine else "false"}
    if confidence is not None:
        headers["X-Mask-Confidence"] = f"{confidence:.4f}"
    if model:
        headers["X-Mask-Model-Version"] = model
    return Response(png, media_type="image/png", headers=headers)


@router.put(
    "/images/{image_id}/mask",
    response_model=MaskSaved,
    summary="Save a corrected mask (If-Match: the version you edited, 0 for none)",
)
async def put_mask(image_id: Id, request: Request, if_match: Annotated[str | None, Header()] = None) -> MaskSaved:
    if if_match is None:
        raise ApiError(428, "if-match-required", "send If-Match with the mask version you edited (0 for none)")
    try:
        expected = int(if_match.strip().strip('"'))
    except ValueError:
        raise ApiError(400, "bad-if-match", "If-Match must be a mask version number") from None
    mask = await _mask_from_body(request)
    try:
        saved = await tasks.edit_mask(request.app.state.platform, image_id, expected, "api", mask)
    except tasks.TaskNotFound:
        raise ApiError(404, "image-not-found", f"no image {image_id}") from None
    except tasks.TaskConflict as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    except InvalidMask as exc:
        raise ApiError(422, "invalid-mask", str(exc)) from None
    return MaskSaved(image_id=saved.image_id, version=saved.version, round_completed=False)


@router.get("/projects/{project}/models", response_model=list[ModelOut], summary="Model versions (learning curve)")
async def list_models(project: ProjectName, request: Request) -> list[ModelOut]:
    try:
        return [ModelOut(**vars(m)) for m in await labelling.list_models(request.app.state.platform, project)]
    except ProjectNotFound:
        raise _project_missing(project) from None


@router.post(
    "/projects/{project}/autolabel",
    response_model=AutoLabelOut,
    status_code=202,
    summary="Label every unlabelled image with a model (default: the current one)",
)
async def autolabel(project: ProjectName, body: AutoLabelRequest, request: Request) -> AutoLabelOut:
    try:
        job = await loop_events.request_autolabel(request.app.state.platform, project, body.model_version_id)
    except ProjectNotFound:
        raise _project_missing(project) from None
    except loop_events.NoModel:
        raise ApiError(409, "no-model", "the project has no trained model yet") from None
    return AutoLabelOut(**vars(job))


@router.get(
    "/projects/{project}/status", response_model=ProjectStatus, summary="Labels, rounds, models, auto-labelling"
)
async def project_status(project: ProjectName, request: Request) -> ProjectStatus:
    try:
        return ProjectStatus(**await labelling.status(request.app.state.platform, project))
    except ProjectNotFound:
        raise _project_missing(project) from None


@router.get(
    "/projects/{project}/export",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
    summary="Download the labelled data set as a zip (png, coco, nifti or dicom-seg)",
)
async def export(
    project: ProjectName,
    request: Request,
    format: Annotated[str, Query(pattern=r"^(png|coco|nifti|dicom-seg)$")] = "png",
) -> Response:
    spool = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115 (closed by the stream)
    try:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
            summary = await exports.export_to(request.app.state.platform, project, format, exports.zip_sink(archive))
            archive.writestr("export.json", json.dumps(vars(summary), indent=2))
    except ProjectNotFound:
        spool.close()
        raise _project_missing(project) from None
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        with spool:
            while chunk := spool.read(1024 * 1024):
                yield chunk

    headers = {"Content-Disposition": f'attachment; filename="{project}-{format}.zip"'}
    return StreamingResponse(chunks(), media_type="application/zip", headers=headers)


@router.get(
    "/projects/{project}/masks",
    response_model=list[MaskOut],
    summary="Each image's newest mask; machine-made ones least confident first (spot-check those)",
)
async def list_masks(
    project: ProjectName, request: Request, machine_made: Annotated[bool | None, Query()] = None
) -> list[MaskOut]:
    try:
        masks = await labelling.newest_masks(request.app.state.platform, project, machine_made=machine_made)
    except ProjectNotFound:
        raise _project_missing(project) from None
    return [MaskOut(**vars(mask)) for mask in masks]
