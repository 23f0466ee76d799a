"""Annotation routes for masks: the newest mask of an image, corrections, approval, the project's masks.

An annotator sees and corrects its own masks and the model's suggestions; everyone's masks are a
reviewer's (``correct-any``, ``review``), and so is approving one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from medal.access import Action, Caller
from medal.dependencies import IdPath, PlatformDep, ProjectPath
from medal.errors import ApiError
from services.annotation import labelling, tasks
from services.annotation.api import PNG
from services.annotation.api_labelling import _mask_from_body
from services.annotation.ownership import ProjectViewer, on_image
from services.annotation.records import MaskApproved, MaskInfo, MaskSaved

router = APIRouter(prefix="/v1", tags=["labelling"])


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2**31 - 1, description="The mask version you reviewed (the newest one).")


@router.get(
    "/images/{image_id}/mask",
    response_class=Response,
    responses=PNG,
    summary="The newest mask of an image (ETag = its version)",
)
async def get_mask(
    image_id: IdPath, platform: PlatformDep, caller: Annotated[Caller, on_image(Action.VIEW)]
) -> Response:
    version, png, machine, confidence, model = await tasks.current_mask(platform, image_id, caller)
    headers = {"ETag": f'"{version}"', "X-Mask-Machine-Made": "true" if machine else "false"}
    if confidence is not None:
        headers["X-Mask-Confidence"] = f"{confidence:.4f}"
    if model:
        headers["X-Mask-Model-Version"] = model
    return Response(png, media_type="image/png", headers=headers)


@router.put(
    "/images/{image_id}/mask",
    response_model=MaskSaved,
    summary="Save a corrected mask as the caller (If-Match: the version you edited, 0 for none)",
    description="An annotator corrects its own masks; anyone else's, or a model's, needs the reviewer role.",
)
async def put_mask(
    image_id: IdPath,
    request: Request,
    platform: PlatformDep,
    caller: Annotated[Caller, on_image(Action.LABEL)],
    if_match: Annotated[str | None, Header()] = None,
) -> MaskSaved:
    if if_match is None:
        raise ApiError(428, "if-match-required", "send If-Match with the mask version you edited (0 for none)")
    try:
        expected = int(if_match.strip().strip('"'))
    except ValueError:
        raise ApiError(400, "bad-if-match", "If-Match must be a mask version number") from None
    mask = await _mask_from_body(request)
    return await tasks.edit_mask(platform, image_id, expected, caller, mask)


@router.post(
    "/images/{image_id}/mask/approve",
    response_model=MaskApproved,
    summary="Approve the newest version of an image's mask (reviewers; recorded in the audit trail)",
    responses={412: {"description": "A newer version exists: review that one"}},
)
async def approve_mask(
    image_id: IdPath, body: Approval, platform: PlatformDep, caller: Annotated[Caller, on_image(Action.APPROVE)]
) -> MaskApproved:
    return await tasks.approve(platform, image_id, body.version, caller)


@router.get(
    "/projects/{project}/masks",
    response_model=list[MaskInfo],
    summary="Each image's newest mask; machine-made ones least confident first (an annotator: its own)",
)
async def list_masks(
    project: ProjectPath,
    platform: PlatformDep,
    caller: ProjectViewer,
    machine_made: Annotated[bool | None, Query()] = None,
) -> list[MaskInfo]:
    author = None if caller.may(Action.REVIEW, project) else caller.id
    return await labelling.newest_masks(platform, project, machine_made=machine_made, author=author)
