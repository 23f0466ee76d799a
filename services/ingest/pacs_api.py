"""Routes of PACS exchange: DICOMweb pulls and pushes, and the original-UID mapping (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from medal.access import Action, Caller, require
from medal.dependencies import PlatformDep, ProjectPath
from services.ingest import pull, push, uid_map

router = APIRouter(prefix="/v1", tags=["pacs"])


@router.post(
    "/projects/{project}/pulls",
    status_code=202,
    response_model=pull.PullStarted,
    summary="Pull studies from a PACS by DICOMweb (QIDO-RS to find, WADO-RS to retrieve)",
    description=(
        "Starts a pull job (poll `GET /v1/jobs/{job_id}`): each instance gets the outcome of an upload; instances "
        "the project holds already are duplicates and are not downloaded again, so a re-run resumes. The URL must lie "
        "under an entry of MEDAL_DICOMWEB_ALLOWED_URLS (403 otherwise): ingest fetches it, so it is never taken "
        "from a caller unchecked."
    ),
    responses={403: {"description": "URL not allowed"}},
)
async def start_pull(
    project: ProjectPath,
    body: pull.PullRequest,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(require(Action.INGEST))],
) -> pull.PullStarted:
    return await pull.start_pull(platform, project, body, caller.id)


@router.post(
    "/projects/{project}/pushes",
    response_model=push.PushResponse,
    summary="Push the project's de-identified instances to an archive by STOW-RS",
    responses={403: {"description": "URL not allowed"}},
)
async def push_studies(
    project: ProjectPath,
    body: push.PushRequest,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(require(Action.EXPORT))],
) -> push.PushResponse:
    return await push.push(platform, project, body, caller)


@router.post(
    "/projects/{project}/original-uids",
    response_model=uid_map.ResolveResponse,
    summary="Resolve de-identified instances to their original UIDs (project admins; projects that keep them)",
    description=(
        "For SEG export to the clinical PACS. A POST so that UIDs never appear in URLs or access logs. 403 unless the "
        "caller is an admin of the project (the export right), 412 unless the project keeps original UIDs, 404 "
        "when some instance has none on record. Every call is recorded (who, purpose, how many) and audited."
    ),
    responses={403: {}, 404: {}, 412: {}},
)
async def resolve_original_uids(
    project: ProjectPath,
    body: uid_map.ResolveRequest,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(require(Action.EXPORT))],
) -> uid_map.ResolveResponse:
    found = await uid_map.resolve(platform, project, body.sop_uids, caller=caller, purpose=body.purpose)
    return uid_map.ResolveResponse(project=project, instances=found)
