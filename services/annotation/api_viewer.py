"""Routes the web UI needs beside the labelling API: windowed images and who holds a round's tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel

from medal.errors import ApiError
from services.annotation import viewer
from services.annotation.schemas import UUID_PATTERN
from services.annotation.settings import WINDOW_PRESETS

router = APIRouter(prefix="/v1", tags=["viewer"])
Id = Annotated[str, Path(pattern=UUID_PATTERN)]
PRESETS = "^(" + "|".join(WINDOW_PRESETS) + ")$"


class RoundTask(BaseModel):
    task_id: str
    image_id: str
    position: int
    state: str
    lease_owner: str | None
    lease_expires_at: datetime | None
    submitted_at: datetime | None


@router.get(
    "/images/{image_id}/windowed.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
    summary="The image under a window preset (ct-lung, ct-bone …; image: the ingest display window)",
)
async def windowed(
    image_id: Id, request: Request, preset: Annotated[str, Query(pattern=PRESETS)] = "image"
) -> Response:
    try:
        png = await viewer.windowed_png(request.app.state.platform, image_id, preset)
    except viewer.NotFound:
        raise ApiError(404, "image-not-found", f"no image {image_id}") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/rounds/{round_id}/tasks", response_model=list[RoundTask], summary="A round's tasks and who holds them")
async def round_tasks(round_id: Id, request: Request) -> list[RoundTask]:
    try:
        return [RoundTask(**vars(t)) for t in await viewer.round_tasks(request.app.state.platform, round_id)]
    except viewer.NotFound:
        raise ApiError(404, "round-not-found", f"no round {round_id}") from None
