"""Messages of the active-learning loop: rounds, committee training, pool scoring, auto-labelling.

Large lists travel by claim check: a ``*_key`` names a JSON manifest in object storage (see
``proto.manifests``); shard commands carry their few hundred items inline (ids and keys only).
"""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from proto.envelope import Message, register

SHA256 = r"^[0-9a-f]{64}$"
PROJECT = r"^[a-z0-9][a-z0-9-]{0,62}$"
OBJECT_KEY = r"^[a-z0-9][a-z0-9/._-]{0,511}$"
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
    image_key: str = Field(pattern=OBJECT_KEY, description="16-bit training PNG.")
    offset: int = Field(default=0, description="Subtract from stored values to get modality values.")


class Prediction(Spec):
    image_id: uuid.UUID
    mask_key: str = Field(pattern=OBJECT_KEY, description="PNG of class indices.")
    mask_sha256: str = Field(pattern=SHA256)
    confidence: float = Field(ge=0.0, le=1.0, description="Mean max-probability over pixels.")


@register
class RoundCompleted(Message):
    """Every task of a round is in (or an admin closed it): train the next committee."""

    TYPE: ClassVar[str] = "round.completed.v1"
    KIND: ClassVar[str] = "event"

    project: str = Field(pattern=PROJECT)
    round_id: uuid.UUID
    round_number: int = Field(ge=0)
    labels: int = Field(ge=1, description="Images in the labelled set.")
    labelled_set_key: str = Field(pattern=OBJECT_KEY, description="Manifest of (image, mask) pairs.")
    pool_key: str = Field(pattern=OBJECT_KEY, description="Manifest of the unlabelled pool.")
    committee_size: int = Field(ge=1, le=64)
    training: TrainingSpec
    selection: SelectionSpec
    seed: int = Field(ge=0)


@register
class TrainMember(Message):
    """Train one committee member on a bootstrap resample of the labelled set."""

    TYPE: ClassVar[str] = "member.train.v1"
    KIND: ClassVar[str] = "command"

    project: str = Field(pattern=PROJECT)
    round_id: uuid.UUID
    member_index: int = Field(ge=0, le=63)
    committee_size: int = Field(ge=1, le=64)
    labelled_set_key: str = Field(pattern=OBJECT_KEY)
    training: TrainingSpec
    seed: int = Field(ge=0)


@register
class MemberTrained(Message):
    """One committee member's weights are in object storage."""

    TYPE: ClassVar[str] = "member.trained.v1"
    KIND: ClassVar[str] = "event"

    project: str = Field(pattern=PROJECT)
    round_id: uuid.UUID
    member_index: int = Field(ge=0, le=63)
    weights_key: str = Field(pattern=OBJECT_KEY)
    weights_sha256: str = Field(pattern=SHA256)
    validation_dice: float = Field(ge=0.0, le=1.0)


@register
class ModelTrained(Message):
    """All members of a round are in: a model version is registered."""

    TYPE: ClassVar[str] = "model.trained.v1"
    KIND: ClassVar[str] = "event"

    project: str = Field(pattern=PROJECT)
    round_id: uuid.UUID
    model_version_id: uuid.UUID
    version: int = Field(ge=1)
    member_keys: list[str] = Field(min_length=1, max_length=64)
    validation_dice: float = Field(ge=0.0, le=1.0)
    labels: int = Field(ge=1)
    pool_key: str = Field(pattern=OBJECT_KEY)
    training: TrainingSpec
    selection: SelectionSpec


@register
class ModelPromoted(Message):
    """A model version became the project's current one (promotion or roll-back)."""

    TYPE: ClassVar[str] = "model.promoted.v1"
    KIND: ClassVar[str] = "event"

    project: str = Field(pattern=PROJECT)
    model_version_id: uuid.UUID
    version: int = Field(ge=1)


@register
class ScorePoolShard(Message):
    """Score one shard of the unlabelled pool with a model version's committee."""

    TYPE: ClassVar[str] = "pool-shard.score.v1"
    KIND: ClassVar[str] = "command"

    project: str = Field(pattern=PROJECT)
    model_version_id: uuid.UUID
    shard_index: int = Field(ge=0)
    shard_count: int = Field(ge=1)
    items: list[PoolItem] = Field(min_length=1, max_length=1000)


@register
class BatchSelected(Message):
    """The next images to label, chosen by the project's strategy from a scored pool."""

    TYPE: ClassVar[str] = "batch.selected.v1"
    KIND: ClassVar[str] = "event"

    project: str = Field(pattern=PROJECT)
    model_version_id: uuid.UUID
    selection_id: uuid.UUID
    chosen: list[uuid.UUID] = Field(min_length=1)
    backlog: list[uuid.UUID] = Field(default_factory=list, description="Next-best candidates, best first.")


@register
class AutoLabel(Message):
    """Predict masks for a shard of a project's unlabelled images."""

    TYPE: ClassVar[str] = "autolabel.run.v1"
    KIND: ClassVar[str] = "command"

    project: str = Field(pattern=PROJECT)
    job_id: uuid.UUID
    model_version_id: uuid.UUID
    member_keys: list[str] = Field(min_length=1, max_length=64)
    training: TrainingSpec
    shard_index: int = Field(ge=0)
    shard_count: int = Field(ge=1)
    items: list[PoolItem] = Field(min_length=1, max_length=1000)


@register
class PredictionsStored(Message):
    """Machine-made masks of one auto-label shard are stored."""

    TYPE: ClassVar[str] = "predictions.stored.v1"
    KIND: ClassVar[str] = "event"

    project: str = Field(pattern=PROJECT)
    job_id: uuid.UUID
    model_version_id: uuid.UUID
    shard_index: int = Field(ge=0)
    shard_count: int = Field(ge=1)
    predictions: list[Prediction] = Field(min_length=1, max_length=1000)
