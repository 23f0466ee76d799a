"""Scoring the unlabelled pool with a trained committee: uncertainty, descriptors, mean prediction.

No gradients, in batches. The selection strategies (services.query.selection) take these arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from medal.model.device import ComputeDevice

__all__ = ["PoolScores", "bald_scores", "encoder_descriptors", "score_pool"]


@dataclass(frozen=True)
class PoolScores:
    """Per-image scores of a pool of n images of size H x W.

    Attributes:
        uncertainty: (n,) mean over pixels and classes of the variance, across the members, of the
            predicted class probabilities (Yang et al. 2017).
        descriptors: (n, D) image descriptors averaged over the members.
        mean_prediction: (n, H, W) uint8 class of each pixel under the members' mean probabilities.
        entropy: (n,) mean over pixels of the softmax entropy (nats) of the first member alone.
    """

    uncertainty: NDArray[np.float64]
    descriptors: NDArray[np.float64]
    mean_prediction: NDArray[np.uint8]
    entropy: NDArray[np.float64]


def _batches(images: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return list(torch.split(images, batch_size))


def _pixel_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """(B, N, H, W) probabilities -> (B, H, W) entropy in nats."""
    return -(probabilities * torch.log(probabilities.clamp_min(1e-12))).sum(dim=1)


@torch.no_grad()
def score_pool(
    members: Sequence[nn.Module], images: torch.Tensor, compute: ComputeDevice, batch_size: int = 16
) -> PoolScores:
    """Score every image with every committee member.

    Args:
        members: M trained SuggestiveFCN-like modules returning (logits, descriptor).
        images: (n, C, H, W) float images on any device.
        compute: where to run.
        batch_size: images per forward pass.
    """
    if not members:
        raise ValueError("scoring needs at least one committee member")
    for member in members:
        member.eval()
    uncertainty, descriptors, predictions, entropy = [], [], [], []
    for batch in _batches(images, batch_size):
        batch = batch.to(compute.device, non_blocking=True)
        member_probabilities, member_descriptors = [], []
        for member in members:
            with compute.autocast():
                logits, descriptor = member(batch)
            member_probabilities.append(torch.softmax(logits.float(), dim=1))
            member_descriptors.append(descriptor.float())
        stacked = torch.stack(member_probabilities)  # (M, B, N, H, W)
        variance = stacked.var(dim=0, unbiased=False) if len(members) > 1 else torch.zeros_like(stacked[0])
        uncertainty.append(variance.mean(dim=(1, 2, 3)).cpu())
        descriptors.append(torch.stack(member_descriptors).mean(dim=0).cpu())
        predictions.append(stacked.mean(dim=0).argmax(dim=1).to(torch.uint8).cpu())
        entropy.append(_pixel_entropy(stacked[0]).mean(dim=(1, 2)).cpu())
    return PoolScores(
        uncertainty=torch.cat(uncertainty).double().numpy(),
        descriptors=torch.cat(descriptors).double().numpy(),
        mean_prediction=torch.cat(predictions).numpy(),
        entropy=torch.cat(entropy).double().numpy(),
    )


@torch.no_grad()
def bald_scores(
    model: nn.Module,
    images: torch.Tensor,
    compute: ComputeDevice,
    passes: int = 8,
    batch_size: int = 16,
    seed: int = 0,
) -> NDArray[np.float64]:
    """MC-dropout BALD (Gal, Islam & Ghahramani, ICML 2017): mutual information per image.

    Runs ``passes`` stochastic forward passes with dropout on (batch norm in eval mode) and returns,
    per image, the pixel mean of H(mean_t p_t) - mean_t H(p_t). Shape (n,).
    """
    if passes < 2:
        raise ValueError(f"BALD needs at least 2 dropout passes, got {passes}")
    model.eval()
    dropout_layers = [m for m in model.modules() if isinstance(m, nn.Dropout | nn.Dropout2d)]
    if not dropout_layers:
        raise ValueError("BALD needs a model with dropout layers")
    for layer in dropout_layers:
        layer.train()
    scores = []
    devices = [compute.device] if compute.is_cuda else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for batch in _batches(images, batch_size):
                batch = batch.to(compute.device, non_blocking=True)
                samples = []
                for _ in range(passes):
                    with compute.autocast():
                        logits, _ = model(batch)
                    samples.append(torch.softmax(logits.float(), dim=1))
                stacked = torch.stack(samples)  # (T, B, N, H, W)
                predictive = _pixel_entropy(stacked.mean(dim=0))
                expected = torch.stack([_pixel_entropy(p) for p in stacked]).mean(dim=0)
                scores.append((predictive - expected).mean(dim=(1, 2)).cpu())
    finally:
        model.eval()
    return torch.cat(scores).double().numpy()


@torch.no_grad()
def encoder_descriptors(
    model: nn.Module, images: torch.Tensor, compute: ComputeDevice, batch_size: int = 16
) -> NDArray[np.float64]:
    """Descriptors (n, D) of one model, e.g. an untrained encoder for the cold start."""
    model.eval()
    descriptors = []
    for batch in _batches(images, batch_size):
        with compute.autocast():
            _, descriptor = model(batch.to(compute.device, non_blocking=True))
        descriptors.append(descriptor.float().cpu())
    return torch.cat(descriptors).double().numpy()
