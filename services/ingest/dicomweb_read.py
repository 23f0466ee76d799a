"""DICOMweb read access to a project's de-identified studies (QIDO-RS and WADO-RS, PS3.18 10.4 and 10.6).

Under the STOW-RS base, ``/ingest/dicomweb/{project}``, so that OHIF (or any DICOMweb client) can open
a project: QIDO-RS ``/studies``, ``/studies/{study}/series``, ``/studies/{study}/series/{series}/instances``
and ``/studies/{study}/instances`` answer ``application/dicom+json``; WADO-RS ``.../metadata`` the
instances' attributes without bulk data; ``/studies/{study}[/series/{series}[/instances/{sop}]]``
the Part-10 objects as ``multipart/related; type="application/dicom"`` (streamed one instance at a
time); ``.../frames/{list}`` the uncompressed frames as ``application/octet-stream`` parts. What is
served is what ingest stored — the de-identified objects, their pseudonymous UIDs in the paths — and
never an instance still in quarantine (it may show burned-in text). The logic is in :mod:`dicomweb_query`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from medal.access import Action, Caller, audit, require
from medal.dependencies import PlatformDep, ProjectPath
from medal.errors import ApiError
from medal.platform import Platform
from services.ingest import dicomweb_query as q

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
DICOM_JSON = "application/dicom+json"
Uid = Annotated[str, Path(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)]
Limit = Query(default=100, ge=1, le=1000)
Offset = Query(default=0, ge=0)
#: Every read of a project's studies is the view right; retrievals are recorded as views of the study.
Viewer = Annotated[Caller, Depends(require(Action.VIEW))]


def _json(body: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(body, media_type=DICOM_JSON)


def _accepts(request: Request, *types: str) -> None:
    accept = request.headers.get("accept", "").lower()
    if accept and not any(kind in accept for kind in (*types, "*/*", "multipart/related")):
        raise ApiError(406, "not-acceptable", f"this resource is offered as {' or '.join(types)}")


def _multipart(parts: AsyncIterator[tuple[str, bytes]], part_type: str) -> StreamingResponse:
    boundary = uuid.uuid4().hex

    async def body() -> AsyncIterator[bytes]:
        async for content_type, data in parts:
            yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    media = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return StreamingResponse(body(), media_type=media)


async def _retrieved(
    platform: Platform,
    caller: Caller,
    project: str,
    study: str,
    parts: AsyncIterator[tuple[str, bytes]],
    part_type: str = "application/dicom",
) -> StreamingResponse:
    """The retrieved objects, and the view of the study in the audit trail (one per caller and hour)."""
    await audit.record_view(platform, caller, project, "study", study)
    return _multipart(parts, part_type)


@router.get("/{project}/studies", summary="QIDO-RS: the project's studies")
async def search_studies(
    project: ProjectPath,
    platform: PlatformDep,
    caller: Viewer,
    request: Request,
    limit: int = Limit,
    offset: int = Offset,
) -> JSONResponse:
    return _json(await q.studies(platform, project, q.filters(request.query_params), limit, offset))


@router.get("/{project}/studies/{study}/series", summary="QIDO-RS: a study's series")
async def search_series(
    project: ProjectPath, platform: PlatformDep, caller: Viewer, request: Request, study: Uid
) -> JSONResponse:
    return _json(await q.series(platform, project, study, q.filters(request.query_params)))


@router.get("/{project}/studies/{study}/instances", summary="QIDO-RS: a study's instances")
async def search_study_instances(
    project: ProjectPath, platform: PlatformDep, caller: Viewer, request: Request, study: Uid
) -> JSONResponse:
    return _json(await q.instances(platform, project, study, None, q.filters(request.query_params)))


@router.get("/{project}/studies/{study}/series/{series}/instances", summary="QIDO-RS: a series' instances")
async def search_instances(
    project: ProjectPath, platform: PlatformDep, caller: Viewer, request: Request, study: Uid, series: Uid
) -> JSONResponse:
    return _json(await q.instances(platform, project, study, series, q.filters(request.query_params)))


@router.get("/{project}/studies/{study}/metadata", summary="WADO-RS: a study's metadata")
async def study_metadata(project: ProjectPath, platform: PlatformDep, caller: Viewer, study: Uid) -> JSONResponse:
    return _json(await q.metadata(platform, project, study))


@router.get("/{project}/studies/{study}/series/{series}/metadata", summary="WADO-RS: a series' metadata")
async def series_metadata(
    project: ProjectPath, platform: PlatformDep, caller: Viewer, study: Uid, series: Uid
) -> JSONResponse:
    return _json(await q.metadata(platform, project, study, series))


@router.get("/{project}/studies/{study}/series/{series}/instances/{sop}/metadata", summary="WADO-RS: metadata")
async def instance_metadata(
    project: ProjectPath, platform: PlatformDep, caller: Viewer, study: Uid, series: Uid, sop: Uid
) -> JSONResponse:
    return _json(await q.metadata(platform, project, study, series, sop))


@router.get("/{project}/studies/{study}", summary="WADO-RS: a study's instances (multipart/related)")
async def retrieve_study(
    project: ProjectPath, platform: PlatformDep, caller: Viewer, request: Request, study: Uid
) -> Any:
    _accepts(request, "application/dicom")
    return await _retrieved(platform, caller, project, study, await q.objects(platform, project, study))


@router.get("/{project}/studies/{study}/series/{series}", summary="WADO-RS: a series' instances")
async def retrieve_series(
    project: ProjectPath, platform: PlatformDep, caller: Viewer, request: Request, study: Uid, series: Uid
) -> Any:
    _accepts(request, "application/dicom")
    return await _retrieved(platform, caller, project, study, await q.objects(platform, project, study, series))


@router.get("/{project}/studies/{study}/series/{series}/instances/{sop}", summary="WADO-RS: one instance")
async def retrieve_instance(
    project: ProjectPath,
    platform: PlatformDep,
    caller: Viewer,
    request: Request,
    study: Uid,
    series: Uid,
    sop: Uid,
) -> Any:
    _accepts(request, "application/dicom")
    parts = await q.objects(platform, project, study, series, sop)
    return await _retrieved(platform, caller, project, study, parts)


@router.get(
    "/{project}/studies/{study}/series/{series}/instances/{sop}/frames/{frames}",
    summary="WADO-RS: frames, uncompressed (multipart/related; type=application/octet-stream)",
)
async def retrieve_frames(
    project: ProjectPath,
    platform: PlatformDep,
    caller: Viewer,
    request: Request,
    study: Uid,
    series: Uid,
    sop: Uid,
    frames: str = Path(pattern=r"^[0-9]{1,5}(,[0-9]{1,5}){0,999}$"),
) -> Any:
    _accepts(request, "application/octet-stream")
    numbers = [int(n) for n in frames.split(",")]
    parts = await q.frames(platform, project, study, series, sop, numbers)
    return await _retrieved(platform, caller, project, study, parts, "application/octet-stream")
