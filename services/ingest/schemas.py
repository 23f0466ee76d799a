"""Request and response models of the ingest API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

PROJECT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class InstanceOutcome(BaseModel):
    index: int = Field(description="Position of the file in the upload (file names are never echoed).")
    outcome: Literal["accepted", "duplicate", "refused"]
    reason: str | None = Field(default=None, description="Why it was refused.")
    instance_id: str | None = None
    image_ids: list[str] = Field(default_factory=list)


class UploadSummary(BaseModel):
    accepted: int
    duplicate: int
    refused: int


class UploadResponse(BaseModel):
    project: str
    results: list[InstanceOutcome]
    summary: UploadSummary


class Study(BaseModel):
    id: str
    modalities: list[str]
    series: int
    instances: int
    images: int


class StudyList(BaseModel):
    project: str
    studies: list[Study]
