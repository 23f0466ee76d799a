"""A project's training spec (from the bus) to the engine's member training settings."""

from __future__ import annotations

from proto.loop import TrainingSpec
from services.trainer.training import TrainingConfig

__all__ = ["build_training_config"]


def build_training_config(spec: TrainingSpec, *, on_gpu: bool = False) -> TrainingConfig:
    """Width, epochs, patience and batch size come from the spec; the rest keeps the engine's defaults.

    The scales are fused at full resolution on a GPU (the paper) and at half resolution on a CPU,
    where it halves the cost for about the same quality (docs/adr/0011-fusion-resolution.md). The
    member file records the stride, so whoever loads a member rebuilds it as trained.
    """
    return TrainingConfig(
        width=spec.width,
        fusion_stride=1 if on_gpu else 2,
        max_epochs=spec.max_epochs,
        patience=spec.patience,
        batch_size=spec.batch_size,
    )
