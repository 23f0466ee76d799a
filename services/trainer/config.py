"""A project's training spec (from the bus) to the engine's member training settings."""

from __future__ import annotations

from proto.loop import TrainingSpec
from services.trainer.training import TrainingConfig

__all__ = ["build_training_config"]


def build_training_config(spec: TrainingSpec) -> TrainingConfig:
    """Width, epochs, patience and batch size come from the spec; the rest keeps the engine's defaults."""
    return TrainingConfig(
        width=spec.width,
        max_epochs=spec.max_epochs,
        patience=spec.patience,
        batch_size=spec.batch_size,
    )
