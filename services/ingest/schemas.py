"""Request and response models of the ingest API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

PROJECT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class InstanceOutcome(BaseModel):
    model_config = {"extra": "ignore"}

    index: int = Field(description="Position of the file in the submission (file names are never echoed).")
    outcome: Literal["accepted", "quarantined", "duplicate", "refused"]
    code: str | None = Field(default=None, description="Machine code of a refusal, e.g. not_dicom, truncated.")
    reason: str | None = Field(default=None, description="Why it was refused or quarantined.")
    instance_id: str | None = None
    image_ids: list[str] = Field(default_factory=list)


class UploadSummary(BaseModel):
    accepted: int = Field(description="Stored and offered for annotation, or stored in quarantine (see job).")
    duplicate: int
    refused: int


class JobCounts(BaseModel):
    id: str
    status: Literal["running", "completed"]
    source: str
    total: int
    accepted: int
    duplicates: int
    quarantined: int
    refused: int
    created_at: datetime
    completed_at: datetime | None


class UploadResponse(BaseModel):
    project: str
    job: JobCounts
    results: list[InstanceOutcome]
    summary: UploadSummary


class JobResponse(BaseModel):
    project: str
    job: JobCounts
    results: list[InstanceOutcome]


class Study(BaseModel):
    id: str
    modalities: list[str]
    series: int
    instances: int
    images: int


class StudyList(BaseModel):
    project: str
    studies: list[Study]


class IngestSettings(BaseModel):
    date_policy: Literal["shift", "remove"] = Field(
        default="shift",
        description="shift: Retain Longitudinal Temporal Information with Modified Dates (keyed per-patient "
        "offset); remove: dates emptied or removed as the Basic Profile says.",
    )
    window_center: float | None = Field(default=None, description="Display preset; both or neither.")
    window_width: float | None = Field(default=None, gt=0)


class QuarantinedInstanceOut(BaseModel):
    instance_id: str
    study_id: str
    series_id: str
    modality: str
    reason: str | None
    images: int


class QuarantineList(BaseModel):
    project: str
    instances: list[QuarantinedInstanceOut]


class ReleaseResponse(BaseModel):
    instance_id: str
    released_images: int
