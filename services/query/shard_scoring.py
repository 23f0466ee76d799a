"""Scoring one pool shard with a committee: images from object storage in, per-image scores out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from medal.model.committees import CommitteeCache
from medal.model.device import ComputeDevice
from medal.model.preprocess import load_image
from proto.loop import PoolItem
from services.query.scoring import bald_scores, score_pool

__all__ = ["BALD_PASSES", "ShardScores", "load_images", "score_items", "score_shard"]

#: MC-dropout passes of the bald strategy.
BALD_PASSES = 8


@dataclass(frozen=True)
class ShardScores:
    """Scores of the n images of one shard, in the shard's order.

    Attributes:
        uncertainty: (n,) committee variance; entropy: (n,) first member's softmax entropy;
        bald: (n,) MC-dropout mutual information of the first member, or None;
        descriptors: (n, D) float32 member-mean descriptors (stored as bytes).
    """

    uncertainty: NDArray[np.float64]
    entropy: NDArray[np.float64]
    bald: NDArray[np.float64] | None
    descriptors: NDArray[np.float32]


def load_images(fetch: Callable[[str], bytes], items: Sequence[PoolItem], image_size: int) -> torch.Tensor:
    """(n, 1, S, S) preprocessed images of the items (medal.model.preprocess)."""
    return torch.stack([load_image(fetch(item.image_key), image_size, item.offset) for item in items])


def score_shard(
    members: Sequence[nn.Module],
    images: torch.Tensor,
    compute: ComputeDevice,
    *,
    with_bald: bool,
    seed: int,
    batch_size: int = 16,
) -> ShardScores:
    """Committee scores of (n, C, H, W) images; BALD too when the project's strategy needs it."""
    scored = score_pool(members, images, compute, batch_size)
    bald = (
        bald_scores(members[0], images, compute, passes=BALD_PASSES, batch_size=batch_size, seed=seed)
        if with_bald
        else None
    )
    return ShardScores(
        uncertainty=scored.uncertainty,
        entropy=scored.entropy,
        bald=bald,
        descriptors=scored.descriptors.astype(np.float32),
    )


def score_items(
    committees: CommitteeCache,
    model_version_id: str,
    member_keys: Sequence[str],
    image_size: int,
    items: Sequence[PoolItem],
    *,
    with_bald: bool,
    seed: int,
) -> ShardScores:
    """Blocking: load the committee (cached per model version) and the images, and score them."""
    members = committees.get(model_version_id, member_keys)
    images = load_images(committees.fetch, items, image_size)
    return score_shard(members, images, committees.compute, with_bald=with_bald, seed=seed)
