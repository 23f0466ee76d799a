"""The route of SEG export to a PACS by STOW-RS (``medal export --format dicom-seg --stow URL --server …``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from medal.access import Action, Caller, require
from medal.dependencies import PlatformDep, ProjectPath
from services.annotation import exports_stow
from services.annotation.ingest_client import IngestClient

router = APIRouter(prefix="/v1", tags=["exports"])


@router.post(
    "/projects/{project}/exports/stow",
    response_model=exports_stow.StowReport,
    summary="Send each labelled image's newest mask as a DICOM SEG to an archive by STOW-RS",
    description=(
        "One outcome per image: sent, failed (the archive's reason; a down, slow or busy archive is retried first) "
        "or skipped (no SEG can be made). `reference: deidentified` (default) references medal's de-identified "
        "instances: push the studies to the same archive with ingest's `POST /ingest/v1/projects/{p}/pushes`. "
        "`reference: original` (project admins; the project's ingest must keep original UIDs) references the "
        "clinical PACS's instances and is recorded in the audit trail. The URL must lie under an entry of "
        "MEDAL_DICOMWEB_ALLOWED_URLS (403 otherwise). SEG UIDs derive from the mask: exporting again resends the "
        "same objects."
    ),
    responses={403: {"description": "URL not allowed, or originals without project admin"}, 412: {}, 503: {}},
)
async def export_stow(
    project: ProjectPath,
    body: exports_stow.StowRequest,
    request: Request,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(require(Action.EXPORT))],
) -> exports_stow.StowReport:
    ingest = IngestClient.for_request(request, platform) if body.reference == "original" else None
    return await exports_stow.stow_export(platform, project, caller, body, ingest)
