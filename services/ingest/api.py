"""Ingest routes: parse the request, call the service, shape the answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Annotated

from fastapi import APIRouter, Path, Request
from starlette.datastructures import UploadFile

from medal.errors import ApiError
from services.ingest import quarantine, service
from services.ingest.archive import ArchiveLimits, ArchiveRefused, is_zip, read_members
from services.ingest.bodies import read_limited, spool_body
from services.ingest.jobs import JobSummary, Submission, get_job
from services.ingest.parsing import RefusedInstance
from services.ingest.raster import Window
from services.ingest.schemas import (
    PROJECT_PATTERN,
    IngestSettings,
    InstanceOutcome,
    JobCounts,
    JobResponse,
    QuarantinedInstanceOut,
    QuarantineList,
    ReleaseResponse,
    Study,
    StudyList,
    UploadResponse,
    UploadSummary,
)
from services.ingest.settings import ProjectSettings, project_settings, save_project_settings

router = APIRouter(prefix="/v1", tags=["ingest"])
ProjectName = Annotated[str, Path(pattern=PROJECT_PATTERN, description="Project slug (a-z, 0-9, -)")]
MAX_FILES = 10000
ZIP_TYPES = ("application/zip", "application/x-zip-compressed")


def job_counts(job: JobSummary) -> JobCounts:
    return JobCounts(
        id=job.id,
        status="completed" if job.status == "completed" else "running",
        source=job.source,
        total=job.total,
        accepted=job.accepted,
        duplicates=job.duplicates,
        quarantined=job.quarantined,
        refused=job.refused,
        created_at=job.created_at,
        completed_at=job.completed_at,
    )


def outcomes(job: JobSummary) -> list[InstanceOutcome]:
    return [InstanceOutcome(**vars(result)) for result in job.results]


def archive_items(file: IO[bytes]) -> Iterator[tuple[bytes | None, RefusedInstance | None]]:
    """Every member of a zip; a zip that cannot be opened is one refused entry."""
    try:
        yield from ((member.data, member.refusal) for member in read_members(file, ArchiveLimits()))
    except ArchiveRefused as exc:
        yield None, RefusedInstance(exc.code, exc.message)


def upload_items(uploads: list[UploadFile]) -> Iterator[tuple[bytes | None, RefusedInstance | None]]:
    """Multipart file parts (spooled to disk by the form parser), zips expanded in place."""
    for upload in uploads:
        upload.file.seek(0)
        if is_zip(upload.file.read(4)):
            upload.file.seek(0)
            yield from archive_items(upload.file)
        else:
            upload.file.seek(0)
            yield upload.file.read(), None


@router.post(
    "/projects/{project}/instances",
    response_model=UploadResponse,
    summary="Upload DICOM instances, folders' worth of files, or zips",
    description=(
        "Body: one file as `application/dicom`, a zip as `application/zip`, or several files (DICOM or zip) as "
        "`multipart/form-data` (any field names). Each instance is de-identified (PS3.15 Basic Profile), "
        "rasterised and stored; the answer is a job with one outcome per instance, also at `GET /v1/jobs/{id}`."
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
    if content_type not in ("application/dicom", "multipart/form-data", *ZIP_TYPES):
        raise ApiError(
            415,
            "unsupported-media-type",
            f"content type {content_type or '(none)'} is not accepted: "
            "send application/dicom, application/zip or multipart/form-data",
        )
    submission = Submission(platform, project, "zip" if content_type in ZIP_TYPES else "upload")
    single = None
    if content_type == "application/dicom":
        data = await read_limited(request, limit)
        await submission.start()
        single = await submission.add(data)
    elif content_type in ZIP_TYPES:
        body = await spool_body(request, limit)
        with body:
            await submission.start()
            await submission.add_all(archive_items(body))
    else:
        async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES, max_part_size=limit) as form:
            uploads = [value for _key, value in form.multi_items() if isinstance(value, UploadFile)]
            if not uploads:
                raise ApiError(400, "no-files", "the multipart body holds no file parts")
            await submission.start()
            await submission.add_all(upload_items(uploads))
    job = await submission.finish()
    if single is not None and single.outcome == "refused":
        details = [{"code": single.code, "job_id": submission.job_id}]
        raise ApiError(422, "refused-instance", f"instance refused: {single.reason}", details)
    results = outcomes(job)
    return UploadResponse(
        project=project,
        job=job_counts(job),
        results=results,
        summary=UploadSummary(
            accepted=sum(o.outcome in ("accepted", "quarantined") for o in results),
            duplicate=sum(o.outcome == "duplicate" for o in results),
            refused=sum(o.outcome == "refused" for o in results),
        ),
    )


@router.get("/jobs/{job_id}", response_model=JobResponse, summary="One submission's outcome per instance")
async def read_job(job_id: str, request: Request) -> JobResponse:
    job = await get_job(request.app.state.platform, job_id)
    if job is None:
        raise ApiError(404, "job-not-found", "no such ingest job")
    return JobResponse(project=job.project, job=job_counts(job), results=outcomes(job))


@router.get("/projects/{project}/studies", response_model=StudyList, summary="Studies ingested into a project")
async def list_studies(project: ProjectName, request: Request) -> StudyList:
    studies = await service.list_studies(request.app.state.platform, project)
    return StudyList(project=project, studies=[Study(**vars(study)) for study in studies])


@router.get("/projects/{project}/settings", response_model=IngestSettings, summary="De-identification and window")
async def read_settings(project: ProjectName, request: Request) -> IngestSettings:
    settings = await project_settings(request.app.state.platform, project)
    preset = settings.preset
    return IngestSettings(
        date_policy=settings.date_policy,
        window_center=preset.center if preset else None,
        window_width=preset.width if preset else None,
    )


@router.put("/projects/{project}/settings", response_model=IngestSettings, summary="Set the project's ingest options")
async def write_settings(project: ProjectName, body: IngestSettings, request: Request) -> IngestSettings:
    if (body.window_center is None) != (body.window_width is None):
        raise ApiError(422, "invalid-window", "give both window_center and window_width, or neither")
    preset = None
    if body.window_center is not None and body.window_width is not None:
        preset = Window(body.window_center, body.window_width)
    await save_project_settings(request.app.state.platform, project, ProjectSettings(body.date_policy, preset))
    return body


@router.get("/projects/{project}/quarantine", response_model=QuarantineList, summary="Instances waiting for review")
async def list_quarantine(project: ProjectName, request: Request) -> QuarantineList:
    items = await quarantine.list_quarantined(request.app.state.platform, project)
    return QuarantineList(project=project, instances=[QuarantinedInstanceOut(**vars(item)) for item in items])


@router.post(
    "/projects/{project}/quarantine/{instance_id}/release",
    response_model=ReleaseResponse,
    summary="Release a reviewed instance for annotation",
)
async def release(project: ProjectName, instance_id: str, request: Request) -> ReleaseResponse:
    caller = getattr(request.state, "caller", None)
    try:
        released = await quarantine.release_instance(
            request.app.state.platform, project, instance_id, getattr(caller, "id", "unknown")
        )
    except quarantine.NotFound:
        raise ApiError(404, "instance-not-found", "no such instance in this project") from None
    return ReleaseResponse(instance_id=instance_id, released_images=released)
