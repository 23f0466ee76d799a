"""Request and response models of the trainer API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

PROJECT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
JobState = Literal["queued", "running", "done", "failed"]


class JobOut(BaseModel):
    id: str
    round_id: str
    round_number: int
    member_index: int
    committee_size: int
    state: JobState
    attempts: int = Field(description="Times a worker claimed the job (a crashed worker's job is claimed again).")
    worker: str | None = Field(description="host:pid of the worker training it now.")
    epoch: int | None
    max_epochs: int
    loss: float | None = Field(description="Training loss of the last epoch.")
    validation_dice: float | None = Field(description="Dice on the member's out-of-bag images, last epoch.")
    eta_seconds: float | None = Field(description="Upper bound: early stopping may finish sooner.")
    heartbeat_at: datetime | None
    queue_position: int | None = Field(description="1 = claimed next; null unless waiting for a worker.")
    weights_key: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobList(BaseModel):
    project: str
    jobs: list[JobOut]


class MemberOut(BaseModel):
    member_index: int
    weights_key: str
    weights_sha256: str
    validation_dice: float
    epochs: int
    train_seconds: float
    attempts: int


class ModelVersionOut(BaseModel):
    id: str
    project: str
    version: int
    status: Literal["candidate", "current", "retired"]
    round_id: str
    round_number: int
    labels: int
    labelled_set_key: str
    validation_dice: float = Field(description="Mean over the members of their out-of-bag Dice.")
    members: list[MemberOut]
    training: dict[str, Any]
    created_at: datetime
    promoted_at: datetime | None


class ModelVersionList(BaseModel):
    project: str
    current: int | None
    versions: list[ModelVersionOut]


class ModelComparison(BaseModel):
    project: str
    a: ModelVersionOut
    b: ModelVersionOut
    validation_dice_change: float = Field(description="b minus a.")
    labels_added: int = Field(description="b minus a.")
