"""The trainer's records, one definition each: what the use cases return and the API answers.

Built from the rows by ``from_row`` (services.trainer.registry, services.trainer.progress), so
the response models are the records themselves.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from proto.types import Id, ObjectKey, ProjectName, Sha256

JobState = Literal["queued", "running", "done", "failed"]
RoundState = Literal["training", "trained", "failed"]
FailureCode = Literal["bad-training-data", "attempts-exhausted", "round-rejected"]
VersionStatus = Literal["candidate", "current", "retired"]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class Job(Record):
    """A member job with its progress and its place in the queue."""

    id: Id
    round_id: Id
    round_number: int
    round_attempt: int = Field(description="The round's attempt this job trains for (1, then 2 … after retries).")
    round_state: RoundState = Field(description="State of the job's round (its current attempt).")
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
    weights_key: ObjectKey | None
    error: str | None = Field(description="Why this job failed or was last given back (no PHI).")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Any, queue_position: int | None) -> Job:
        worker = row.lease_owner if row.state == "running" else None
        return cls.model_validate({**row._mapping, "worker": worker, "queue_position": queue_position})


class TrainingRound(Record):
    """A round as the trainer sees it: training, trained, or failed with what a person can do about it."""

    id: Id
    round_number: int
    state: RoundState
    attempt: int = Field(description="1, then 2, 3 … each time a person retried it.")
    committee_size: int
    labels: int
    failure_code: FailureCode | None = Field(description="Set while the round is failed.")
    failure_reason: str | None = Field(description="What went wrong and what to fix before retrying (no PHI).")
    failed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> TrainingRound:
        return cls.model_validate(dict(row._mapping))


class JobList(Record):
    project: ProjectName
    rounds: list[TrainingRound] = Field(description="The project's rounds, newest first (failed ones say why).")
    jobs: list[Job]


class MemberInfo(Record):
    member_index: int
    weights_key: ObjectKey
    weights_sha256: Sha256
    validation_dice: float
    epochs: int
    train_seconds: float
    attempts: int


class ModelVersion(Record):
    id: Id
    project: ProjectName
    version: int
    status: VersionStatus
    round_id: Id
    round_number: int
    labels: int
    labelled_set_key: ObjectKey
    validation_dice: float = Field(description="Mean over the members of their out-of-bag Dice.")
    members: list[MemberInfo]
    training: dict[str, Any]
    created_at: datetime
    promoted_at: datetime | None
    promoted_by: str | None = Field(
        description="Who made it current by a promote or roll-back request; null when the trainer did."
    )

    @classmethod
    def from_row(cls, row: Any) -> ModelVersion:
        decoded = {"members": json.loads(row.members), "training": json.loads(row.training)}
        return cls.model_validate({**row._mapping, **decoded})


class ModelVersionList(Record):
    project: ProjectName
    current: int | None
    versions: list[ModelVersion]


class ModelComparison(Record):
    project: ProjectName
    a: ModelVersion
    b: ModelVersion
    validation_dice_change: float = Field(description="b minus a.")
    labels_added: int = Field(description="b minus a.")
