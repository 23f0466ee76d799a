"""The records the query API shows, one definition each: built from the stored rows by services.query.audit."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from proto.types import Id, ProjectName


class Record(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True, protected_namespaces=())


class CandidateOut(Record):
    image_id: Id
    rank: int = Field(ge=1, description="1 = the first candidate of the strategy's ranking.")
    uncertainty: float
    entropy: float
    bald: float | None
    chosen: bool


class SelectionSummaryOut(Record):
    id: Id
    project: ProjectName
    model_version_id: Id
    version: int
    strategy: str
    candidates_k: int = Field(description="K: candidates considered.")
    batch_k: int = Field(description="k: images chosen.")
    pool_size: int
    chosen: list[Id] = Field(description="Image ids in the order chosen.")
    created_at: datetime


class SelectionOut(SelectionSummaryOut):
    candidates: list[CandidateOut] = Field(description="In rank order, with their scores.")
    backlog: list[Id] = Field(description="Next-best image ids, best first.")


class ReplayOut(Record):
    selection_id: Id
    matches: bool
    chosen: list[Id]
    recomputed_chosen: list[Id]
    candidates_match: bool
    backlog_match: bool


class RunOut(Record):
    model_version_id: Id
    version: int
    strategy: str
    pool_size: int
    shard_count: int
    shards_done: int
    selection_id: Id | None
    created_at: datetime
