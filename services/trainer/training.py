"""Training one segmentation model (one committee member) with early stopping.

Loss: MONAI's Dice + cross-entropy (Dice over the foreground classes, batch-wise, copes with small
lesions and class imbalance; cross-entropy keeps gradients well behaved). AdamW with a cosine decay of
the learning rate over ``max_epochs`` (to 1% of it), augmentation from
services.trainer.augment, early stopping on a validation part of the labelled set, fixed seeds, CUDA
with mixed precision when present.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from monai.losses import DiceCELoss
from torch import nn

from medal.model.device import ComputeDevice, seed_everything
from medal.model.fcn import SuggestiveFCN
from services.trainer.augment import AugmentConfig, augment_batch

__all__ = ["EpochReport", "TrainedMember", "TrainingConfig", "build_model", "segmentation_loss", "train_member"]


@dataclass(frozen=True)
class TrainingConfig:
    """Model shape and optimisation settings of one member.

    ``min_epoch_images``: an epoch shows every training image once, repeated until at least this many
    images were seen, so that a round with 8 labels still takes enough optimiser steps per epoch.
    """

    width: float = 0.25
    fusion_stride: int = 1
    dropout: float = 0.1
    max_epochs: int = 40
    patience: int = 8
    min_epoch_images: int = 64
    batch_size: int = 8
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError("max_epochs, patience and batch_size must be positive")


@dataclass
class TrainedMember:
    """A trained model (best validation state loaded) and how training went."""

    model: SuggestiveFCN
    epochs: int
    best_epoch: int
    best_validation_loss: float
    seconds: float
    images_seen: int


@dataclass(frozen=True)
class EpochReport:
    """Handed to ``train_member``'s ``on_epoch`` after every epoch (the model is in eval mode then).

    ``validation_loss`` is None without validation images; ``best_epoch`` is the epoch whose state
    will be kept.
    """

    epoch: int
    max_epochs: int
    train_loss: float
    validation_loss: float | None
    best_epoch: int
    seconds: float
    model: nn.Module


def build_model(in_channels: int, num_classes: int, config: TrainingConfig) -> SuggestiveFCN:
    """The FCN that a member trains, shaped by ``config``."""
    return SuggestiveFCN(
        in_channels,
        num_classes,
        width=config.width,
        fusion_stride=config.fusion_stride,
        dropout=config.dropout,
    )


def segmentation_loss() -> nn.Module:
    """Dice (foreground classes, over the batch) + cross-entropy, from MONAI.

    Call as loss(logits (B, N, H, W), masks (B, 1, H, W) integer classes).
    """
    return DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True)


def _epoch_batches(indices: torch.Tensor, config: TrainingConfig, generator: torch.Generator) -> list[torch.Tensor]:
    repeats = max(1, math.ceil(config.min_epoch_images / len(indices)))
    order = torch.cat([indices[torch.randperm(len(indices), generator=generator)] for _ in range(repeats)])
    batches = list(torch.split(order, config.batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:  # batch norm cannot train on one image
        batches = batches[:-1]
    return batches


@torch.no_grad()
def _validation_loss(
    model: nn.Module,
    loss_function: nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    indices: torch.Tensor,
    config: TrainingConfig,
    compute: ComputeDevice,
) -> float:
    model.eval()
    total = 0.0
    for batch in torch.split(indices, config.batch_size * 2):
        batch_images = images[batch].to(compute.device)
        batch_masks = masks[batch].to(compute.device)
        with compute.autocast():
            logits, _ = model(batch_images)
        total += float(loss_function(logits.float(), batch_masks[:, None])) * len(batch)
    return total / len(indices)


def train_member(
    images: torch.Tensor,
    masks: torch.Tensor,
    train_indices: torch.Tensor,
    validation_indices: torch.Tensor,
    num_classes: int,
    config: TrainingConfig,
    compute: ComputeDevice,
    seed: int,
    initial_state: Mapping[str, torch.Tensor] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainedMember:
    """Train one FCN from scratch (or from ``initial_state``) with early stopping.

    Args:
        images: (n, C, H, W) float images of the whole labelled set (any device).
        masks: (n, H, W) int64 class masks.
        train_indices: (t,) rows to train on (may repeat, e.g. a bootstrap resample).
        validation_indices: (v,) rows for early stopping; empty: train ``max_epochs`` and keep the last.
        num_classes: N, background included.
        config: model and optimisation settings.
        compute: device and mixed precision.
        seed: seeds initialisation, batch order and augmentation.
        initial_state: weights to start from (warm start) instead of a fresh initialisation.
        on_epoch: called after every epoch (progress, cancellation: an exception it raises stops training).
    """
    if len(train_indices) == 0:
        raise ValueError("a member needs at least one training image")
    started = time.perf_counter()
    generator = seed_everything(seed)
    model = build_model(images.shape[1], num_classes, config)
    if initial_state is not None:
        model.load_state_dict(initial_state)
    model.to(compute.device)
    images = images.to(compute.device)
    masks = masks.to(compute.device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=config.max_epochs, eta_min=config.learning_rate * 0.01
    )
    scaler = torch.amp.GradScaler(compute.device.type, enabled=compute.mixed_precision)
    loss_function = segmentation_loss()

    best_state = copy.deepcopy(model.state_dict())
    best_loss, best_epoch, epochs_run, images_seen = math.inf, 0, 0, 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        loss_sum, loss_count = torch.zeros((), device=compute.device), 0
        for batch in _epoch_batches(train_indices, config, generator):
            batch_images, batch_masks = augment_batch(images[batch], masks[batch], generator, config.augment)
            optimiser.zero_grad(set_to_none=True)
            with compute.autocast():
                logits, _ = model(batch_images)
            loss = loss_function(logits.float(), batch_masks[:, None])
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            images_seen += len(batch)
            loss_sum, loss_count = loss_sum + loss.detach() * len(batch), loss_count + len(batch)
        schedule.step()
        epochs_run = epoch
        validation: float | None = None
        if len(validation_indices) == 0:
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
        else:
            validation = _validation_loss(model, loss_function, images, masks, validation_indices, config, compute)
            if validation < best_loss:
                best_loss, best_epoch = validation, epoch
                best_state = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            model.eval()
            train_loss = float(loss_sum) / max(1, loss_count)
            seconds = time.perf_counter() - started
            on_epoch(EpochReport(epoch, config.max_epochs, train_loss, validation, best_epoch, seconds, model))
        if validation is not None and epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return TrainedMember(
        model=model,
        epochs=epochs_run,
        best_epoch=best_epoch,
        best_validation_loss=best_loss,
        seconds=time.perf_counter() - started,
        images_seen=images_seen,
    )
