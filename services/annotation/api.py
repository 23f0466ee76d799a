"""Annotation routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from medal.errors import ApiError
from services.annotation import service
from services.annotation.schemas import PROJECT_PATTERN, ImageOut, ImagePage, ProjectCreate, ProjectOut

router = APIRouter(prefix="/v1", tags=["annotation"])
ProjectName = Annotated[str, Path(pattern=PROJECT_PATTERN)]


@router.get("/projects", response_model=list[ProjectOut], summary="All projects")
async def list_projects(request: Request) -> list[ProjectOut]:
    return [ProjectOut(**vars(p)) for p in await service.list_projects(request.app.state.platform)]


@router.post("/projects", response_model=ProjectOut, status_code=201, summary="Create a project")
async def create_project(body: ProjectCreate, request: Request) -> ProjectOut:
    try:
        project = await service.create_project(request.app.state.platform, body.name)
    except service.ProjectExists:
        raise ApiError(409, "project-exists", f"project {body.name} already exists") from None
    return ProjectOut(**vars(project))


@router.get("/projects/{project}", response_model=ProjectOut, summary="One project")
async def get_project(project: ProjectName, request: Request) -> ProjectOut:
    try:
        return ProjectOut(**vars(await service.get_project(request.app.state.platform, project)))
    except service.ProjectNotFound:
        raise ApiError(404, "project-not-found", f"no project named {project}") from None


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
        raise ApiError(404, "project-not-found", f"no project named {project}") from None
    return ImagePage(
        project=project, total=total, limit=limit, offset=offset, images=[ImageOut(**vars(i)) for i in images]
    )


@router.get(
    "/images/{image_id}/display.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    summary="The image as an 8-bit PNG for viewing",
)
async def image_display(image_id: Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")], request: Request) -> Response:
    try:
        png = await service.image_png(request.app.state.platform, image_id)
    except service.ImageNotFound:
        raise ApiError(404, "image-not-found", f"no image {image_id}") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
