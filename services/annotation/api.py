"""Annotation routes for projects and images, and who is signed in."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from medal.dependencies import CallerDep, IdPath, PlatformDep, ProjectPath
from services.annotation import service
from services.annotation.records import Me, Project
from services.annotation.schemas import HeldOut, ImagePage, ProjectCreate
from services.annotation.settings import ProjectSettings

router = APIRouter(prefix="/v1", tags=["projects"])
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}}}


@router.get("/me", response_model=Me, summary="Who is signed in (the owner of leases, the author of masks)")
async def me(caller: CallerDep) -> Me:
    return Me(id=caller.id, kind=caller.kind)


@router.get("/projects", response_model=list[Project], summary="All projects")
async def list_projects(platform: PlatformDep) -> list[Project]:
    return await service.list_projects(platform)


@router.post("/projects", response_model=Project, status_code=201, summary="Create a project with its settings")
async def create_project(body: ProjectCreate, platform: PlatformDep) -> Project:
    return await service.create_project(platform, body.name, body.settings)


@router.get("/projects/{project}", response_model=Project, summary="One project")
async def get_project(project: ProjectPath, platform: PlatformDep) -> Project:
    return await service.get_project(platform, project)


@router.put("/projects/{project}/settings", response_model=Project, summary="Replace a project's settings")
async def put_settings(project: ProjectPath, body: ProjectSettings, platform: PlatformDep) -> Project:
    return await service.update_settings(platform, project, body)


@router.get("/projects/{project}/images", response_model=ImagePage, summary="Images offered for annotation")
async def list_images(
    project: ProjectPath,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ImagePage:
    total, images = await service.list_images(platform, project, limit=limit, offset=offset)
    return ImagePage(project=project, total=total, limit=limit, offset=offset, images=images)


@router.put("/images/{image_id}/held-out", status_code=204, summary="Put an image in or out of the evaluation set")
async def set_held_out(image_id: IdPath, body: HeldOut, platform: PlatformDep) -> Response:
    await service.set_held_out(platform, image_id, body.held_out)
    return Response(status_code=204)


@router.get(
    "/images/{image_id}/display.png",
    response_class=Response,
    responses=PNG,
    summary="The image as an 8-bit PNG for viewing",
)
async def image_display(image_id: IdPath, platform: PlatformDep) -> Response:
    png = await service.image_png(platform, image_id)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
