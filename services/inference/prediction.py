"""Predicting masks with a committee: the mean of the members' softmax, a confidence per image.

A predicted mask is the class of highest mean probability at each pixel, resized back to the image's
own size with nearest-neighbour (medal.model.preprocess.resize_classes) and encoded as an 8-bit PNG of
class indices. Its confidence is the mean over the pixels of the highest class probability: people
spot-check the least confident machine-made masks first.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from medal.model.committees import CommitteeCache
from medal.model.device import ComputeDevice
from medal.model.preprocess import load_image, mask_to_png, resize_classes

__all__ = ["PredictedMask", "confidences", "mean_probabilities", "predict_masks", "predict_stored"]


@dataclass(frozen=True)
class PredictedMask:
    """One machine-made mask: PNG of class indices at the image's size, and its confidence in [0, 1]."""

    png: bytes
    confidence: float
    width: int
    height: int


@torch.no_grad()
def mean_probabilities(
    members: Sequence[nn.Module], images: torch.Tensor, compute: ComputeDevice, batch_size: int = 8
) -> torch.Tensor:
    """(n, C, S, S) images -> (n, N, S, S) float32 CPU mean over the members of their softmax."""
    if not members:
        raise ValueError("prediction needs at least one committee member")
    for member in members:
        member.eval()
    batches = []
    for batch in torch.split(images, batch_size):
        batch = batch.to(compute.device, non_blocking=True)
        total: torch.Tensor | None = None
        for member in members:
            with compute.autocast():
                logits, _ = member(batch)
            probabilities = torch.softmax(logits.float(), dim=1)
            total = probabilities if total is None else total + probabilities
        assert total is not None
        batches.append((total / len(members)).cpu())
    return torch.cat(batches)


def confidences(probabilities: torch.Tensor) -> list[float]:
    """(n, N, H, W) probabilities -> per image, the pixel mean of the highest class probability."""
    return [float(value) for value in probabilities.max(dim=1).values.mean(dim=(1, 2)).clamp(0.0, 1.0)]


def _size(png_bytes: bytes) -> tuple[int, int]:
    """(width, height) from the PNG header."""
    with Image.open(io.BytesIO(png_bytes)) as image:
        return image.width, image.height


def predict_masks(
    members: Sequence[nn.Module],
    pngs: Sequence[bytes],
    offsets: Sequence[int],
    image_size: int,
    compute: ComputeDevice,
) -> list[PredictedMask]:
    """Predict a mask for each stored training PNG (its offset as ingest recorded it)."""
    images = torch.stack([load_image(png, image_size, offset) for png, offset in zip(pngs, offsets, strict=True)])
    probabilities = mean_probabilities(members, images, compute)
    classes = probabilities.argmax(dim=1)
    masks = []
    for index, (png, confidence) in enumerate(zip(pngs, confidences(probabilities), strict=True)):
        width, height = _size(png)
        masks.append(
            PredictedMask(mask_to_png(resize_classes(classes[index], (height, width))), confidence, width, height)
        )
    return masks


def predict_stored(
    committees: CommitteeCache,
    model_version_id: str,
    member_keys: Sequence[str],
    image_size: int,
    image_keys: Sequence[str],
    offsets: Sequence[int],
) -> list[PredictedMask]:
    """Blocking: load the committee (cached per model version) and the images, and predict their masks."""
    members = committees.get(model_version_id, member_keys)
    pngs = [committees.fetch(key) for key in image_keys]
    return predict_masks(members, pngs, offsets, image_size, committees.compute)
