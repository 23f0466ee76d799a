"""Request bodies of the annotation API (what it answers is in :mod:`services.annotation.records`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from proto.types import Id, ProjectName
from services.annotation.records import Image
from services.annotation.settings import ProjectSettings


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ProjectName
    settings: ProjectSettings = Field(default_factory=ProjectSettings)


class ImagePage(BaseModel):
    project: str
    total: int
    limit: int
    offset: int
    images: list[Image]


class HeldOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    held_out: bool


class AutoLabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_version_id: Id | None = Field(default=None, description="Default: the project's current version")
