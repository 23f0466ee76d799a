"""Routes the web UI needs beside the labelling API: windowed images and who holds a round's tasks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from medal.access import Action, Caller
from medal.dependencies import IdPath, PlatformDep
from services.annotation import viewer
from services.annotation.api import PNG, viewed
from services.annotation.ownership import on_image, on_round
from services.annotation.records import RoundTask
from services.annotation.settings import WINDOW_PRESETS

router = APIRouter(prefix="/v1", tags=["viewer"])
PRESETS = "^(" + "|".join(WINDOW_PRESETS) + ")$"


@router.get(
    "/images/{image_id}/windowed.png",
    response_class=Response,
    responses=PNG,
    summary="The image under a window preset (ct-lung, ct-bone …; image: the ingest display window)",
)
async def windowed(
    image_id: IdPath,
    request: Request,
    platform: PlatformDep,
    caller: Annotated[Caller, on_image(Action.VIEW)],
    preset: Annotated[str, Query(pattern=PRESETS)] = "image",
) -> Response:
    png = await viewer.windowed_png(platform, image_id, preset)
    await viewed(request, platform, caller, image_id)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/rounds/{round_id}/tasks",
    response_model=list[RoundTask],
    summary="A round's tasks and who holds them (an annotator sees only its own name among the holders)",
)
async def round_tasks(
    round_id: IdPath, request: Request, platform: PlatformDep, caller: Annotated[Caller, on_round(Action.VIEW)]
) -> list[RoundTask]:
    found = await viewer.round_tasks(platform, round_id)
    if caller.may(Action.REVIEW, request.state.project):
        return found
    return [t if t.lease_owner == caller.id else t.model_copy(update={"lease_owner": None}) for t in found]
