"""Annotation routes for projects and images. Who is signed in: ``GET /v1/me`` of the access router."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from medal.access import Action, Caller, audit, require
from medal.dependencies import CallerDep, IdPath, PlatformDep, ProjectPath
from services.annotation import service
from services.annotation.ownership import ProjectViewer, in_project, on_image
from services.annotation.records import Project
from services.annotation.schemas import HeldOut, ImagePage, ProjectCreate
from services.annotation.settings import ProjectSettings

router = APIRouter(prefix="/v1", tags=["projects"])
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}}}


@router.get("/projects", response_model=list[Project], summary="The projects the caller has a role in")
async def list_projects(platform: PlatformDep, caller: CallerDep) -> list[Project]:
    return await service.list_projects(platform, caller.project_filter)


@router.post("/projects", response_model=Project, status_code=201, summary="Create a project with its settings")
async def create_project(
    body: ProjectCreate,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(require(Action.CREATE_PROJECT, project=None))],
) -> Project:
    return await service.create_project(platform, body.name, body.settings, caller)


@router.get("/projects/{project}", response_model=Project, summary="One project")
async def get_project(project: ProjectPath, platform: PlatformDep, _: ProjectViewer) -> Project:
    return await service.get_project(platform, project)


@router.put("/projects/{project}/settings", response_model=Project, summary="Replace a project's settings")
async def put_settings(
    project: ProjectPath,
    body: ProjectSettings,
    platform: PlatformDep,
    caller: Annotated[Caller, in_project(Action.SETTINGS)],
) -> Project:
    return await service.update_settings(platform, project, body, caller)


@router.get("/projects/{project}/images", response_model=ImagePage, summary="Images offered for annotation")
async def list_images(
    project: ProjectPath,
    platform: PlatformDep,
    _: ProjectViewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ImagePage:
    total, images = await service.list_images(platform, project, limit=limit, offset=offset)
    return ImagePage(project=project, total=total, limit=limit, offset=offset, images=images)


@router.put("/images/{image_id}/held-out", status_code=204, summary="Put an image in or out of the evaluation set")
async def set_held_out(
    image_id: IdPath, body: HeldOut, platform: PlatformDep, caller: Annotated[Caller, on_image(Action.SETTINGS)]
) -> Response:
    await service.set_held_out(platform, image_id, body.held_out, caller)
    return Response(status_code=204)


@router.get(
    "/images/{image_id}/display.png",
    response_class=Response,
    responses=PNG,
    summary="The image as an 8-bit PNG for viewing (recorded as viewed, once per caller and hour)",
)
async def image_display(
    image_id: IdPath, request: Request, platform: PlatformDep, caller: Annotated[Caller, on_image(Action.VIEW)]
) -> Response:
    png = await service.image_png(platform, image_id)
    await viewed(request, platform, caller, image_id)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


async def viewed(request: Request, platform: PlatformDep, caller: Caller, image_id: str) -> None:
    """Record that ``caller`` saw the image (bounded: one row per caller, image and hour)."""
    await audit.record_view(platform, caller, request.state.project, "image", image_id)
