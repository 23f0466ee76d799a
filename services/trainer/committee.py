"""A committee of M members, each trained on a bootstrap resample of the labelled set (Yang et al. 2017).

Each member trains on n rows drawn with replacement from the n labelled images and stops early on
its out-of-bag images (those its resample missed, about 37% of them), so every labelled image trains
some member and validation never sees an image that member trained on. See
docs/adr/0012-committee-bootstrap-out-of-bag.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from medal.model.device import ComputeDevice
from services.trainer.training import TrainedMember, TrainingConfig, train_member

__all__ = ["bootstrap_resample", "member_seed", "train_committee"]


def member_seed(seed: int, member: int) -> int:
    """The seed of committee member ``member`` for a run seeded ``seed``."""
    return int(np.random.SeedSequence([seed, member]).generate_state(1)[0])


def bootstrap_resample(count: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``count`` rows with replacement; return (resample (count,), out-of-bag rows (sorted))."""
    if count < 1:
        raise ValueError("cannot resample an empty labelled set")
    resample = rng.integers(0, count, size=count)
    out_of_bag = np.setdiff1d(np.arange(count), resample)
    return torch.from_numpy(resample).long(), torch.from_numpy(out_of_bag).long()


def train_committee(
    images: torch.Tensor,
    masks: torch.Tensor,
    num_classes: int,
    config: TrainingConfig,
    compute: ComputeDevice,
    members: int = 4,
    seed: int = 0,
    warm_states: Sequence[Mapping[str, torch.Tensor]] | None = None,
) -> list[TrainedMember]:
    """Train ``members`` FCNs on bootstrap resamples of the labelled set.

    Args:
        images: (n, C, H, W) float labelled images.
        masks: (n, H, W) int64 masks.
        num_classes: N, background included.
        config: member training settings.
        compute: device and mixed precision.
        members: committee size M.
        seed: run seed; member m uses member_seed(seed, m) for its resample and its training.
        warm_states: M state dicts to start from (warm start), or None to train from scratch.
    """
    if members < 1:
        raise ValueError(f"a committee needs at least one member, got {members}")
    if warm_states is not None and len(warm_states) != members:
        raise ValueError(f"{len(warm_states)} warm-start states for {members} members")
    trained = []
    for member in range(members):
        seed_m = member_seed(seed, member)
        resample, out_of_bag = bootstrap_resample(len(images), np.random.default_rng(seed_m))
        trained.append(
            train_member(
                images,
                masks,
                resample,
                out_of_bag,
                num_classes,
                config,
                compute,
                seed=seed_m % 2**31,
                initial_state=None if warm_states is None else warm_states[member],
            )
        )
    return trained
