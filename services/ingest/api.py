"""Ingest routes: parse the request, call the service, shape the answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Annotated

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile

from medal.access import Action, Caller, from_path, require
from medal.dependencies import IdPath, PlatformDep, ProjectPath
from medal.errors import ApiError
from services.ingest import quarantine, service
from services.ingest.archive import ArchiveLimits, ArchiveRefused, is_zip, read_members
from services.ingest.bodies import read_limited, spool_body
from services.ingest.errors import JobNotFound
from services.ingest.jobs import Submission, get_job, job_project
from services.ingest.parsing import RefusedInstance
from services.ingest.schemas import (
    IngestSettings,
    JobResponse,
    QuarantineList,
    ReleaseResponse,
    StudyList,
    UploadResponse,
)
from services.ingest.settings import project_settings, save_project_settings

router = APIRouter(prefix="/v1", tags=["ingest"])
MAX_FILES = 10000
ZIP_TYPES = ("application/zip", "application/x-zip-compressed")
Items = Iterator[tuple[bytes | None, RefusedInstance | None]]
Ingester = Annotated[Caller, Depends(require(Action.INGEST))]
Viewer = Annotated[Caller, Depends(require(Action.VIEW))]
Reviewer = Annotated[Caller, Depends(require(Action.QUARANTINE_RELEASE))]


def no_job(_job_id: str) -> JobNotFound:
    return JobNotFound("no such ingest job")


def archive_items(file: IO[bytes]) -> Items:
    """Every member of a zip; a zip that cannot be opened is one refused entry."""
    try:
        yield from ((member.data, member.refusal) for member in read_members(file, ArchiveLimits()))
    except ArchiveRefused as exc:
        yield None, exc


def upload_items(uploads: list[UploadFile]) -> Items:
    """Multipart file parts (spooled to disk by the form parser), zips expanded in place."""
    for upload in uploads:
        upload.file.seek(0)
        zipped = is_zip(upload.file.read(4))
        upload.file.seek(0)
        if zipped:
            yield from archive_items(upload.file)
        else:
            yield upload.file.read(), None


@router.post(
    "/projects/{project}/instances",
    response_model=UploadResponse,
    summary="Upload DICOM instances, folders' worth of files, or zips",
    description=(
        "Body: one file as `application/dicom`, a zip as `application/zip`, or several files (DICOM or zip) as "
        "`multipart/form-data` (any field names). Each instance is de-identified (PS3.15 Basic Profile), "
        "rasterised and stored; the answer is a job with one outcome per instance, also at `GET /v1/jobs/{id}`. "
        "The job records the authenticated caller as its submitter."
    ),
    responses={
        413: {"description": "Body too large"},
        415: {"description": "Wrong content type"},
        422: {"description": "A single instance was refused"},
    },
)
async def upload_instances(
    project: ProjectPath, request: Request, platform: PlatformDep, caller: Ingester
) -> UploadResponse:
    limit = platform.settings.max_upload_bytes
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/dicom", "multipart/form-data", *ZIP_TYPES):
        raise ApiError(
            415,
            "unsupported-media-type",
            f"content type {content_type or '(none)'} is not accepted: "
            "send application/dicom, application/zip or multipart/form-data",
        )
    submission = Submission(platform, project, "zip" if content_type in ZIP_TYPES else "upload", caller.id)
    if content_type == "application/dicom":
        data = await read_limited(request, limit)
        await submission.start()
        await submission.add(data)
        return UploadResponse.of(await submission.finish_one())
    if content_type in ZIP_TYPES:
        with await spool_body(request, limit) as body:
            await submission.start()
            await submission.add_all(archive_items(body))
        return UploadResponse.of(await submission.finish())
    async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES, max_part_size=limit) as form:
        uploads = [value for _key, value in form.multi_items() if isinstance(value, UploadFile)]
        if not uploads:
            raise ApiError(400, "no-files", "the multipart body holds no file parts")
        await submission.start()
        await submission.add_all(upload_items(uploads))
    return UploadResponse.of(await submission.finish())


@router.get("/jobs/{job_id}", response_model=JobResponse, summary="One submission's outcome per instance")
async def read_job(
    job_id: IdPath,
    platform: PlatformDep,
    _: Annotated[Caller, Depends(require(Action.INGEST, project=from_path("job_id", job_project, missing=no_job)))],
) -> JobResponse:
    return await get_job(platform, job_id)


@router.get("/projects/{project}/studies", response_model=StudyList, summary="Studies ingested into a project")
async def list_studies(project: ProjectPath, platform: PlatformDep, _: Viewer) -> StudyList:
    return StudyList(project=project, studies=await service.list_studies(platform, project))


@router.get("/projects/{project}/settings", response_model=IngestSettings, summary="De-identification and window")
async def read_settings(project: ProjectPath, platform: PlatformDep, _: Viewer) -> IngestSettings:
    return await project_settings(platform, project)


@router.put("/projects/{project}/settings", response_model=IngestSettings, summary="Set the project's ingest options")
async def write_settings(
    project: ProjectPath,
    body: IngestSettings,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(require(Action.SETTINGS))],
) -> IngestSettings:
    return await save_project_settings(platform, project, body, caller)


@router.get("/projects/{project}/quarantine", response_model=QuarantineList, summary="Instances waiting for review")
async def list_quarantine(project: ProjectPath, platform: PlatformDep, _: Reviewer) -> QuarantineList:
    return QuarantineList(project=project, instances=await quarantine.list_quarantined(platform, project))


@router.post(
    "/projects/{project}/quarantine/{instance_id}/release",
    response_model=ReleaseResponse,
    summary="Release a reviewed instance for annotation (recorded as released by the caller)",
)
async def release(
    project: ProjectPath, instance_id: IdPath, platform: PlatformDep, caller: Reviewer
) -> ReleaseResponse:
    return await quarantine.release_instance(platform, project, instance_id, caller)
