"""Response models of the query API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

PROJECT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
UUID_PATTERN = r"^[0-9a-f-]{36}$"


class CandidateOut(BaseModel):
    image_id: str
    rank: int
    uncertainty: float
    entropy: float
    bald: float | None
    chosen: bool


class SelectionSummaryOut(BaseModel):
    id: str
    project: str
    model_version_id: str
    version: int
    strategy: str
    candidates_k: int
    batch_k: int
    pool_size: int
    chosen: list[str]
    created_at: datetime


class SelectionOut(SelectionSummaryOut):
    candidates: list[CandidateOut]
    backlog: list[str]


class ReplayOut(BaseModel):
    selection_id: str
    matches: bool
    chosen: list[str]
    recomputed_chosen: list[str]
    candidates_match: bool
    backlog_match: bool


class RunOut(BaseModel):
    model_version_id: str
    version: int
    strategy: str
    pool_size: int
    shard_count: int
    shards_done: int
    selection_id: str | None
    created_at: datetime
