"""Annotation routes for projects and images."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from medal.errors import ApiError
from services.annotation import service
from services.annotation.schemas import (
    PROJECT_PATTERN,
    UUID_PATTERN,
    HeldOut,
    ImageOut,
    ImagePage,
    ProjectCreate,
    ProjectOut,
)
from services.annotation.settings import ProjectSettings

router = APIRouter(prefix="/v1", tags=["projects"])
ProjectName = Annotated[str, Path(pattern=PROJECT_PATTERN)]
ImageId = Annotated[str, Path(pattern=UUID_PATTERN)]


def _not_found(project: str) -> ApiError:
    return ApiError(404, "project-not-found", f"no project named {project}")


@router.get("/projects", response_model=list[ProjectOut], summary="All projects")
async def list_projects(request: Request) -> list[ProjectOut]:
    return [ProjectOut(**vars(p)) for p in await service.list_projects(request.app.state.platform)]


@router.post("/projects", response_model=ProjectOut, status_code=201, summary="Create a project with its settings")
async def create_project(body: ProjectCreate, request: Request) -> ProjectOut:
    try:
        project = await service.create_project(request.app.state.platform, body.name, body.settings)
    except service.ProjectExists:
        raise ApiError(409, "project-exists", f"project {body.name} already exists") from None
    return ProjectOut(**vars(project))


@router.get("/projects/{project}", response_model=ProjectOut, summary="One project")
async def get_project(project: ProjectName, request: Request) -> ProjectOut:
    try:
        return ProjectOut(**vars(await service.get_project(request.app.state.platform, project)))
    except service.ProjectNotFound:
        raise _not_found(project) from None


@router.put("/projects/{project}/settings", response_model=ProjectOut, summary="Replace a project's settings")
async def put_settings(project: ProjectName, body: ProjectSettings, request: Request) -> ProjectOut:
    try:
        return ProjectOut(**vars(await service.update_settings(request.app.state.platform, project, body)))
    except service.ProjectNotFound:
        raise _not_found(project) from None


@router.get("/projects/{project}/images", response_model=ImagePage, summary="Images offered for annotation")
async def list_images(
    project: ProjectName,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ImagePage:
    try:
        total, images = await service.list_images(request.app.state.platform, project, limit=limit, offset=offset)
    except service.ProjectNotFound:
        raise _not_found(project) from None
    return ImagePage(
        project=project, total=total, limit=limit, offset=offset, images=[ImageOut(**vars(i)) for i in images]
    )


@router.put("/images/{image_id}/held-out", status_code=204, summary="Put an image in or out of the evaluation set")
async def set_held_out(image_id: ImageId, body: HeldOut, request: Request) -> Response:
    try:
        await service.set_held_out(request.app.state.platform, image_id, body.held_out)
    except service.ImageNotFound:
        raise ApiError(404, "image-not-found", f"no image {image_id}") from None
    return Response(status_code=204)


@router.get(
    "/images/{image_id}/display.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    summary="The image as an 8-bit PNG for viewing",
)
async def image_display(image_id: ImageId, request: Request) -> Response:
    try:
        png = await service.image_png(request.app.state.platform, image_id)
    except service.ImageNotFound:
        raise ApiError(404, "image-not-found", f"no image {image_id}") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
