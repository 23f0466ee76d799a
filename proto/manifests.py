"""JSON manifests stored in object storage and referenced from messages (claim check)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from proto.loop import PoolItem
from proto.types import ObjectKey, ProjectName


class LabelledItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    image_id: uuid.UUID
    image_key: ObjectKey = Field(description="16-bit training PNG.")
    offset: int = 0
    mask_key: ObjectKey = Field(description="PNG of class indices.")


class LabelledSet(BaseModel):
    """Snapshot of a project's labelled images at the end of a round."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    project: ProjectName
    round_id: uuid.UUID
    num_classes: int = Field(ge=2)
    items: list[LabelledItem]


class Pool(BaseModel):
    """Snapshot of a project's unlabelled images at the end of a round."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    project: ProjectName
    round_id: uuid.UUID
    items: list[PoolItem]
