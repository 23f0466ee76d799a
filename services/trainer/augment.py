"""Batch augmentation for segmentation training: flips, small rotations, intensity jitter.

Runs on whole batches on the training device, driven by an explicit torch.Generator so a fixed seed
gives the same augmented batches. Geometry is applied identically to images (bilinear) and masks
(nearest); intensity only to images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AugmentConfig", "augment_batch"]


@dataclass(frozen=True)
class AugmentConfig:
    """How strong the augmentation is; probabilities are per image."""

    flip_probability: float = 0.5
    max_rotation_degrees: float = 10.0
    max_scale_change: float = 0.1
    max_intensity_scale: float = 0.1
    max_intensity_shift: float = 0.1


def _uniform(count: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator, config: AugmentConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly flip, rotate, scale and change the intensity of a batch.

    Args:
        images: (B, C, H, W) float images.
        masks: (B, H, W) integer class masks.
        generator: CPU generator for the random parameters.
        config: augmentation strengths.

    Returns:
        (B, C, H, W) images and (B, H, W) masks (same dtype as given).
    """
    config = config or AugmentConfig()
    count = images.shape[0]
    flip_x = torch.where(torch.rand(count, generator=generator) < config.flip_probability, -1.0, 1.0)
    flip_y = torch.where(torch.rand(count, generator=generator) < config.flip_probability, -1.0, 1.0)
    angle = _uniform(count, -config.max_rotation_degrees, config.max_rotation_degrees, generator) * math.pi / 180
    scale = 1.0 + _uniform(count, -config.max_scale_change, config.max_scale_change, generator)
    gain = 1.0 + _uniform(count, -config.max_intensity_scale, config.max_intensity_scale, generator)
    shift = _uniform(count, -config.max_intensity_shift, config.max_intensity_shift, generator)

    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = cos * flip_x
    theta[:, 0, 1] = -sin * flip_y
    theta[:, 1, 0] = sin * flip_x
    theta[:, 1, 1] = cos * flip_y
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped_masks = F.grid_sample(
        masks[:, None].to(images.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False
    )[:, 0].to(masks.dtype)
    gain = gain.to(images.device, images.dtype)[:, None, None, None]
    shift = shift.to(images.device, images.dtype)[:, None, None, None]
    return warped * gain + shift, warped_masks
