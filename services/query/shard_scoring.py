"""Scoring one pool shard with a committee: images from object storage in, per-image scores out."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from medal.model.committees import CommitteeCache
from medal.model.device import ComputeDevice
from medal.model.preprocess import ImageDecodeError, load_image
from medal.storage import ObjectNotFound
from proto.loop import PoolItem
from services.query.scoring import bald_scores, score_pool

__all__ = ["BALD_PASSES", "ShardScores", "load_images", "score_items", "score_shard"]

log = logging.getLogger("medal.query")

#: MC-dropout passes of the bald strategy.
BALD_PASSES = 8


@dataclass(frozen=True)
class ShardScores:
    """Scores of the n images of one shard that could be read, in the shard's order.

    Attributes:
        rows: (n,) position in the shard of each scored image (a missing or unreadable one is left out).
        uncertainty: (n,) committee variance; entropy: (n,) first member's softmax entropy;
        bald: (n,) MC-dropout mutual information of the first member, or None;
        descriptors: (n, D) float32 member-mean descriptors (stored as bytes).
    """

    rows: list[int]
    uncertainty: NDArray[np.float64]
    entropy: NDArray[np.float64]
    bald: NDArray[np.float64] | None
    descriptors: NDArray[np.float32]


def load_images(
    fetch: Callable[[str], bytes], items: Sequence[PoolItem], image_size: int
) -> tuple[list[int], torch.Tensor | None]:
    """The rows of the items that could be read and their (n, 1, S, S) images (medal.model.preprocess).

    An image missing from storage or not decodable is left out (and logged), so that one bad object
    cannot hold up the selection of a whole pool; storage outages still raise (and are retried).
    """
    rows, images = [], []
    for row, item in enumerate(items):
        try:
            images.append(load_image(fetch(item.image_key), image_size, item.offset))
        except (ObjectNotFound, ImageDecodeError) as exc:
            log.warning("pool image %s left out of scoring: %s", item.image_id, type(exc).__name__)
            continue
        rows.append(row)
    return rows, torch.stack(images) if images else None


def score_shard(
    members: Sequence[nn.Module],
    images: torch.Tensor,
    compute: ComputeDevice,
    *,
    with_bald: bool,
    seed: int,
    rows: Sequence[int] | None = None,
    batch_size: int = 16,
) -> ShardScores:
    """Committee scores of (n, C, H, W) images (shard ``rows``, default 0..n-1); BALD when the strategy needs it."""
    scored = score_pool(members, images, compute, batch_size)
    bald = (
        bald_scores(members[0], images, compute, passes=BALD_PASSES, batch_size=batch_size, seed=seed)
        if with_bald
        else None
    )
    return ShardScores(
        rows=list(range(len(images))) if rows is None else list(rows),
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
    rows, images = load_images(committees.fetch, items, image_size)
    if images is None:
        empty = np.zeros(0, dtype=np.float64)
        return ShardScores([], empty, empty, empty if with_bald else None, np.zeros((0, 0), dtype=np.float32))
    members = committees.get(model_version_id, member_keys)
    with committees.busy:
        return score_shard(members, images, committees.compute, with_bald=with_bald, seed=seed, rows=rows)
