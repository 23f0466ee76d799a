"""Messages of the active-learning loop: rounds, committee training, pool scoring, auto-labelling.

Large lists travel by claim check: a ``*_key`` names a JSON manifest in object storage (see
``proto.manifests``); shard commands carry their few hundred items inline (ids and keys only).
"""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from proto.envelope import Message, register
from proto.types import ObjectKey, ProjectName, Sha256

STRATEGY = Literal["suggestive", "suggestive-coverage", "random", "uncertainty", "entropy", "bald", "coreset"]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingSpec(Spec):
    """How a project's committee members are built and trained."""

    num_classes: int = Field(ge=2, le=64, description="Including background (class 0).")
    image_size: int = Field(ge=16, le=1024, description="Square input size in pixels.")
    width: float = Field(gt=0, le=1, description="FCN width multiplier (1 = the paper's 1024 channels).")
    max_epochs: int = Field(ge=1, le=1000)
    patience: int = Field(ge=1, le=1000, description="Early-stopping patience in epochs.")
    batch_size: int = Field(ge=1, le=256)
    warm_start: bool = False


class SelectionSpec(Spec):
    strategy: STRATEGY
    candidates: int = Field(ge=1, le=10000, description="K: most uncertain images considered.")
    batch: int = Field(ge=1, le=10000, description="k: images chosen per round.")


class PoolItem(Spec):
    image_id: uuid.UUID
    image_key: ObjectKey = Field(description="16-bit training PNG.")
    offset: int = Field(default=0, description="Subtract from stored values to get modality values.")


class Prediction(Spec):
    image_id: uuid.UUID
    mask_key: ObjectKey = Field(description="PNG of class indices.")
    mask_sha256: Sha256
    confidence: float = Field(ge=0.0, le=1.0, description="Mean max-probability over pixels.")


@register
class RoundCompleted(Message):
    """Every task of a round is in (or an admin closed it): train the next committee."""

    TYPE: ClassVar[str] = "round.completed.v1"
    KIND: ClassVar[str] = "event"

    project: ProjectName
    round_id: uuid.UUID
    round_number: int = Field(ge=0)
    labels: int = Field(ge=1, description="Images in the labelled set.")
    labelled_set_key: ObjectKey = Field(description="Manifest of (image, mask) pairs.")
    pool_key: ObjectKey = Field(description="Manifest of the unlabelled pool.")
    committee_size: int = Field(ge=1, le=64)
    training: TrainingSpec
    selection: SelectionSpec
    seed: int = Field(ge=0, le=2**31 - 1)
    attempt: int = Field(
        default=1, ge=1, le=1000, description="1, then 2, 3 … when a person retries a round whose training failed."
    )


@register
class RoundFailed(Message):
    """The trainer could not train a round's committee: nothing was registered; a person can fix and retry."""

    TYPE: ClassVar[str] = "round.failed.v1"
    KIND: ClassVar[str] = "event"

    project: ProjectName
    round_id: uuid.UUID
    round_number: int = Field(ge=0)
    attempt: int = Field(ge=1, le=1000)
    code: Literal["bad-training-data", "attempts-exhausted", "round-rejected"] = Field(
        description="bad-training-data: a labelled image or mask cannot be read; attempts-exhausted: workers "
        "failed or died on every attempt; round-rejected: the labelled set is missing, empty or inconsistent."
    )
    reason: str = Field(min_length=1, max_length=2000, description="What went wrong and what to fix (no PHI).")


@register
class ModelTrained(Message):
    """All members of a round are in: a model version is registered.

    v2: the round's pool and selection spec are no longer repeated here (query takes them from
    ``round.completed.v1``); the trainer does not carry what only query uses.
    """

    TYPE: ClassVar[str] = "model.trained.v2"
    KIND: ClassVar[str] = "event"

    project: ProjectName
    round_id: uuid.UUID
    model_version_id: uuid.UUID
    version: int = Field(ge=1)
    member_keys: list[ObjectKey] = Field(min_length=1, max_length=64)
    validation_dice: float = Field(ge=0.0, le=1.0)
    labels: int = Field(ge=1)
    training: TrainingSpec


@register
class ModelPromoted(Message):
    """A model version became the project's current one (promotion or roll-back)."""

    TYPE: ClassVar[str] = "model.promoted.v1"
    KIND: ClassVar[str] = "event"

    project: ProjectName
    model_version_id: uuid.UUID
    version: int = Field(ge=1)


@register
class ScorePoolShard(Message):
    """Score one shard of the unlabelled pool with a model version's committee."""

    TYPE: ClassVar[str] = "pool-shard.score.v1"
    KIND: ClassVar[str] = "command"

    project: ProjectName
    model_version_id: uuid.UUID
    shard_index: int = Field(ge=0)
    shard_count: int = Field(ge=1)
    items: list[PoolItem] = Field(min_length=1, max_length=1000)


@register
class BatchSelected(Message):
    """The next images to label, chosen by the project's strategy from a scored pool."""

    TYPE: ClassVar[str] = "batch.selected.v1"
    KIND: ClassVar[str] = "event"

    project: ProjectName
    model_version_id: uuid.UUID
    selection_id: uuid.UUID
    chosen: list[uuid.UUID] = Field(min_length=1)
    backlog: list[uuid.UUID] = Field(default_factory=list, description="Next-best candidates, best first.")


@register
class AutoLabel(Message):
    """Predict masks for a shard of a project's unlabelled images."""

    TYPE: ClassVar[str] = "autolabel.run.v1"
    KIND: ClassVar[str] = "command"

    project: ProjectName
    job_id: uuid.UUID
    model_version_id: uuid.UUID
    member_keys: list[ObjectKey] = Field(min_length=1, max_length=64)
    training: TrainingSpec
    shard_index: int = Field(ge=0)
    shard_count: int = Field(ge=1)
    items: list[PoolItem] = Field(min_length=1, max_length=1000)


@register
class PredictionsStored(Message):
    """Machine-made masks of one auto-label shard are stored."""

    TYPE: ClassVar[str] = "predictions.stored.v1"
    KIND: ClassVar[str] = "event"

    project: ProjectName
    job_id: uuid.UUID
    model_version_id: uuid.UUID
    shard_index: int = Field(ge=0)
    shard_count: int = Field(ge=1)
    predictions: list[Prediction] = Field(min_length=1, max_length=1000)
