"""What annotation keeps and shows, one definition each: the use cases return them, the routes answer them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.annotation.settings import ProjectSettings

RoundState = Literal["open", "completed", "training-failed"]
FailureCode = Literal["bad-training-data", "attempts-exhausted", "round-rejected"]


class Record(BaseModel):
    """Built from a row (``Record.model_validate(row)``) or from keywords; never changed afterwards."""

    model_config = ConfigDict(frozen=True, from_attributes=True)


class Project(Record):
    id: str
    name: str
    images: int
    created_at: datetime
    settings: ProjectSettings


class Image(Record):
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


class RoundFailure(Record):
    """Why a round's committee could not be trained (from the trainer's round.failed.v1)."""

    round_id: str
    round_number: int
    attempt: int
    code: FailureCode
    reason: str
    failed_at: datetime


class Round(Record):
    id: str
    number: int
    state: RoundState
    source: str
    tasks: int
    submitted: int
    attempt: int
    completed_at: datetime | None
    failure: RoundFailure | None


class TaskLease(Record):
    task_id: str
    round_id: str
    round_number: int
    image_id: str
    width: int
    height: int
    lease_token: str
    lease_expires_at: datetime


class RoundTask(Record):
    task_id: str
    image_id: str
    position: int
    state: str
    lease_owner: str | None
    lease_expires_at: datetime | None
    submitted_at: datetime | None


class MaskSaved(Record):
    image_id: str
    version: int
    round_completed: bool = False


class MaskInfo(Record):
    image_id: str
    version: int
    machine_made: bool
    confidence: float | None
    model_version_id: str | None
    author: str
    created_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None


class MaskApproved(Record):
    image_id: str
    version: int
    approved_by: str
    approved_at: datetime


class ModelVersion(Record):
    id: str
    version: int
    round_id: str
    labels: int
    validation_dice: float
    current: bool
    created_at: datetime


class AutoLabelJob(Record):
    job_id: str
    model_version_id: str
    images: int
    shards: int


class AutoLabelProgress(AutoLabelJob):
    shards_done: int
    complete: bool


class Lease(Record):
    """A leased task, or why there is none (training-failed: the failure to fix and retry)."""

    task: TaskLease | None
    status: Literal["leased", "waiting-for-model", "training-failed", "done", "not-started"]
    failure: RoundFailure | None = None


class ProjectStatus(Record):
    project: str
    labels: int
    images: int
    held_out: int
    rounds: list[Round]
    models: list[ModelVersion]
    done: bool
    failure: RoundFailure | None = None
    autolabel: list[AutoLabelProgress]
