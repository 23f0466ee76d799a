"""Predicting masks with a committee: the mean of the members' softmax, a confidence per image.

A predicted mask is the class of highest mean probability at each pixel, resized back to the image's
own size with nearest-neighbour (medal.model.preprocess.resize_classes) and encoded as an 8-bit PNG of
class indices. Its confidence is the mean over the pixels of the highest class probability: people
spot-check the least confident machine-made masks first.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from medal.model.committees import CommitteeCache
from medal.model.device import ComputeDevice
from medal.model.preprocess import ImageDecodeError, load_image, mask_to_png, resize_classes
from medal.storage import ObjectNotFound

__all__ = ["PredictedMask", "confidences", "mean_probabilities", "predict_masks", "predict_stored"]

log = logging.getLogger("medal.inference")


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


def _masks(
    members: Sequence[nn.Module], images: torch.Tensor, sizes: Sequence[tuple[int, int]], compute: ComputeDevice
) -> list[PredictedMask]:
    """Masks of (n, C, S, S) images, each resized back to its (width, height)."""
    probabilities = mean_probabilities(members, images, compute)
    classes = probabilities.argmax(dim=1)
    masks = []
    for index, ((width, height), confidence) in enumerate(zip(sizes, confidences(probabilities), strict=True)):
        png = mask_to_png(resize_classes(classes[index], (height, width)))
        masks.append(PredictedMask(png, confidence, width, height))
    return masks


def predict_masks(
    members: Sequence[nn.Module],
    pngs: Sequence[bytes],
    offsets: Sequence[int],
    image_size: int,
    compute: ComputeDevice,
) -> list[PredictedMask]:
    """Predict a mask for each stored training PNG (its offset as ingest recorded it)."""
    images = torch.stack([load_image(png, image_size, offset) for png, offset in zip(pngs, offsets, strict=True)])
    return _masks(members, images, [_size(png) for png in pngs], compute)


def predict_stored(
    committees: CommitteeCache,
    model_version_id: str,
    member_keys: Sequence[str],
    image_size: int,
    image_keys: Sequence[str],
    offsets: Sequence[int],
) -> list[PredictedMask | None]:
    """Blocking: load the committee (cached per model version) and the images, and predict their masks.

    An image missing from storage or not decodable gets None (and is logged), so that one bad object
    does not hold up a whole auto-label shard; storage outages still raise (and are retried).
    """
    readable: list[int] = []
    images: list[torch.Tensor] = []
    sizes: list[tuple[int, int]] = []
    for index, (key, offset) in enumerate(zip(image_keys, offsets, strict=True)):
        try:
            png = committees.fetch(key)
            images.append(load_image(png, image_size, offset))
        except (ObjectNotFound, ImageDecodeError) as exc:
            log.warning("image %s left out of prediction: %s", key, type(exc).__name__)
            continue
        readable.append(index)
        sizes.append(_size(png))
    results: list[PredictedMask | None] = [None] * len(image_keys)
    if readable:
        members = committees.get(model_version_id, member_keys)
        with committees.busy:
            masks = _masks(members, torch.stack(images), sizes, committees.compute)
        for index, mask in zip(readable, masks, strict=True):
            results[index] = mask
    return results
