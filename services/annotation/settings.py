"""A project's settings: label classes, window, strategy, committee, stopping rule, model size."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from proto.loop import STRATEGY, SelectionSpec, TrainingSpec

WINDOW_PRESETS: dict[str, tuple[float, float] | None] = {
    "image": None,  # the image's own window
    "ct-lung": (-600.0, 1500.0),
    "ct-mediastinum": (50.0, 350.0),
    "ct-soft-tissue": (40.0, 400.0),
    "ct-bone": (400.0, 1800.0),
    "ct-brain": (40.0, 80.0),
}


class LabelClass(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    colour: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")


class TrainingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_size: int = Field(default=128, ge=16, le=1024)
    width: float = Field(default=0.25, gt=0, le=1)
    max_epochs: int = Field(default=40, ge=1, le=1000)
    patience: int = Field(default=8, ge=1, le=1000)
    batch_size: int = Field(default=8, ge=1, le=256)
    warm_start: bool = False


class ProjectSettings(BaseModel):
    """Everything a project decides. Class 0 is background; ``classes`` are the foreground classes."""

    model_config = ConfigDict(extra="forbid")
    classes: list[LabelClass] = Field(
        default_factory=lambda: [LabelClass(name="lesion", colour="#e6194b")], min_length=1, max_length=63
    )
    window: Literal["image", "ct-lung", "ct-mediastinum", "ct-soft-tissue", "ct-bone", "ct-brain"] = "image"
    strategy: STRATEGY = "suggestive"
    candidates: int = Field(default=16, ge=1, le=10000, description="K")
    batch: int = Field(default=8, ge=1, le=10000, description="k: images per round")
    initial_labels: int = Field(default=8, ge=1, le=10000, description="Cold-start round size")
    committee: int = Field(default=4, ge=1, le=64)
    target_dice: float = Field(default=0.9, gt=0, le=1, description="Validation Dice that ends labelling")
    label_budget: int | None = Field(default=None, ge=1, description="Most images a person labels")
    keep_annotators_busy: bool = Field(
        default=True, description="While a model trains, hand out tasks from the last ranking's backlog"
    )
    lease_seconds: int = Field(default=900, ge=5, le=86400)
    auto_label_when_done: bool = True
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _k_within_k(self) -> ProjectSettings:
        if self.batch > self.candidates:
            raise ValueError(f"batch k={self.batch} cannot exceed candidates K={self.candidates}")
        return self

    @property
    def num_classes(self) -> int:
        return len(self.classes) + 1

    def training_spec(self) -> TrainingSpec:
        t = self.training
        return TrainingSpec(
            num_classes=self.num_classes,
            image_size=t.image_size,
            width=t.width,
            max_epochs=t.max_epochs,
            patience=t.patience,
            batch_size=t.batch_size,
            warm_start=t.warm_start,
        )

    def selection_spec(self) -> SelectionSpec:
        return SelectionSpec(strategy=self.strategy, candidates=self.candidates, batch=self.batch)
