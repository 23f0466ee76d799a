"""Request and response models of the annotation API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

PROJECT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=PROJECT_PATTERN, description="Project slug (a-z, 0-9, -)")


class ProjectOut(BaseModel):
    id: str
    name: str
    images: int
    created_at: datetime


class ImageOut(BaseModel):
    id: str
    study_id: str
    series_id: str
    instance_id: str
    frame: int
    modality: str
    width: int
    height: int
    created_at: datetime


class ImagePage(BaseModel):
    project: str
    total: int
    limit: int
    offset: int
    images: list[ImageOut]
