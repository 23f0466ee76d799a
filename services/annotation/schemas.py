"""Request and response models of the annotation API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.annotation.settings import ProjectSettings

PROJECT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=PROJECT_PATTERN, description="Project slug (a-z, 0-9, -)")
    settings: ProjectSettings = Field(default_factory=ProjectSettings)


class ProjectOut(BaseModel):
    id: str
    name: str
    images: int
    created_at: datetime
    settings: ProjectSettings


class ImageOut(BaseModel):
    id: str
    study_id: str
    series_id: str
    instance_id: str
    frame: int
    modality: str
    width: int
    height: int
    held_out: bool
    created_at: datetime


class ImagePage(BaseModel):
    project: str
    total: int
    limit: int
    offset: int
    images: list[ImageOut]


class HeldOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    held_out: bool


class RoundOut(BaseModel):
    id: str
    number: int
    state: Literal["open", "completed"]
    source: str
    tasks: int
    submitted: int


class LeaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._@-]+$")


class TaskOut(BaseModel):
    task_id: str
    round_id: str
    round_number: int
    image_id: str
    width: int
    height: int
    lease_token: str
    lease_expires_at: datetime


class LeaseResponse(BaseModel):
    task: TaskOut | None
    status: Literal["leased", "waiting-for-model", "done", "not-started"]


class MaskSaved(BaseModel):
    image_id: str
    version: int
    round_completed: bool


class ModelOut(BaseModel):
    id: str
    version: int
    round_id: str
    labels: int
    validation_dice: float
    current: bool
    created_at: datetime


class AutoLabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_version_id: str | None = Field(default=None, pattern=UUID_PATTERN)


class AutoLabelOut(BaseModel):
    job_id: str
    model_version_id: str
    images: int
    shards: int


class ProjectStatus(BaseModel):
    project: str
    labels: int
    images: int
    held_out: int
    rounds: list[RoundOut]
    models: list[ModelOut]
    done: bool
    autolabel: list[dict[str, object]]


class MaskOut(BaseModel):
    image_id: str
    version: int
    machine_made: bool
    confidence: float | None
    model_version_id: str | None
    author: str
    created_at: datetime
