"""Ingest routes: parse the request, call the service, shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.datastructures import UploadFile

from medal.errors import ApiError
from services.ingest import service
from services.ingest.schemas import (
    PROJECT_PATTERN,
    InstanceOutcome,
    Study,
    StudyList,
    UploadResponse,
    UploadSummary,
)

router = APIRouter(prefix="/v1", tags=["ingest"])
ProjectName = Annotated[str, Path(pattern=PROJECT_PATTERN, description="Project slug (a-z, 0-9, -)")]
MAX_FILES = 1000


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload-too-large", f"body of {declared} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload-too-large", f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/projects/{project}/instances",
    response_model=UploadResponse,
    summary="Upload DICOM instances",
    description=(
        "Body: one file as `application/dicom`, or several as `multipart/form-data` (any field names). "
        "Each instance is de-identified, rasterised and stored; the answer gives one outcome per file."
    ),
    responses={
        413: {"description": "Body too large"},
        415: {"description": "Wrong content type"},
        422: {"description": "A single instance was refused"},
    },
)
async def upload_instances(project: ProjectName, request: Request) -> UploadResponse:
    platform = request.app.state.platform
    limit = platform.settings.max_upload_bytes
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    correlation_id = uuid.uuid4()
    if content_type == "application/dicom":
        result = await service.ingest_instance(
            platform, project, await _read_limited(request, limit), correlation_id=correlation_id
        )
        if result.outcome == "refused":
            raise ApiError(422, "refused-instance", f"instance refused: {result.reason}")
        results = [result]
    elif content_type == "multipart/form-data":
        results = []
        async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES) as form:
            uploads = [value for _key, value in form.multi_items() if isinstance(value, UploadFile)]
            if not uploads:
                raise ApiError(400, "no-files", "the multipart body holds no file parts")
            for index, upload in enumerate(uploads):
                data = await upload.read()
                results.append(
                    await service.ingest_instance(platform, project, data, index=index, correlation_id=correlation_id)
                )
    else:
        raise ApiError(
            415,
            "unsupported-media-type",
            f"content type {content_type or '(none)'} is not accepted: send application/dicom or multipart/form-data",
        )
    outcomes = [InstanceOutcome(**vars(result)) for result in results]
    return UploadResponse(
        project=project,
        results=outcomes,
        summary=UploadSummary(
            accepted=sum(o.outcome == "accepted" for o in outcomes),
            duplicate=sum(o.outcome == "duplicate" for o in outcomes),
            refused=sum(o.outcome == "refused" for o in outcomes),
        ),
    )


@router.get("/projects/{project}/studies", response_model=StudyList, summary="Studies ingested into a project")
async def list_studies(project: ProjectName, request: Request) -> StudyList:
    studies = await service.list_studies(request.app.state.platform, project)
    return StudyList(project=project, studies=[Study(**vars(study)) for study in studies])
