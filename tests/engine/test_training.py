"""Training determinism, augmentation, bootstrap, and committee scoring on tiny inputs."""

from __future__ import annotations

import numpy as np
import torch

from medal.model.device import select_device
from services.query.scoring import bald_scores, score_pool
from services.trainer.augment import augment_batch
from services.trainer.committee import bootstrap_resample, train_committee
from services.trainer.training import TrainingConfig

TINY = TrainingConfig(width=1 / 16, max_epochs=2, patience=1, min_epoch_images=8, batch_size=4)


def _tiny_data(count: int = 6, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(count, 1, size, size, generator=generator)
    masks = torch.zeros(count, size, size, dtype=torch.long)
    for i in range(count):  # a bright square of class 1 and a strip of class 2
        images[i, :, 4 + i : 14 + i, 6:16] += 1.0
        masks[i, 4 + i : 14 + i, 6:16] = 1
        masks[i, 24:28, :] = 2
    return images, masks


def test_same_seed_same_committee() -> None:
    images, masks = _tiny_data()
    compute = select_device("cpu")
    first = train_committee(images, masks, 3, TINY, compute, members=2, seed=5)
    second = train_committee(images, masks, 3, TINY, compute, members=2, seed=5)
    for a, b in zip(first, second, strict=True):
        for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
            assert torch.equal(x, y), name
    members_differ = any(
        not torch.equal(x, y)
        for x, y in zip(first[0].model.state_dict().values(), first[1].model.state_dict().values(), strict=True)
    )
    assert members_differ  # different bootstrap resamples and seeds


def test_bootstrap_out_of_bag_is_the_complement() -> None:
    resample, out_of_bag = bootstrap_resample(20, np.random.default_rng(0))
    assert len(resample) == 20
    assert set(out_of_bag.tolist()) == set(range(20)) - set(resample.tolist())


def test_augmentation_moves_mask_with_image() -> None:
    images = torch.zeros(4, 1, 32, 32)
    masks = torch.zeros(4, 32, 32, dtype=torch.long)
    images[:, :, 8:20, 8:20] = 1.0
    masks[:, 8:20, 8:20] = 1
    warped, warped_masks = augment_batch(images, masks, torch.Generator().manual_seed(1))
    assert warped.shape == images.shape and warped_masks.dtype == torch.long
    # Where the warped mask says 1, the warped image is bright (up to interpolation at the border).
    inside = warped[:, 0][warped_masks == 1]
    assert inside.mean() > 0.7


def test_scores_have_the_documented_shapes_and_ranges() -> None:
    images, masks = _tiny_data()
    compute = select_device("cpu")
    committee = train_committee(images, masks, 3, TINY, compute, members=2, seed=0)
    scores = score_pool([m.model for m in committee], images, compute, batch_size=4)
    assert scores.uncertainty.shape == (6,) and (scores.uncertainty >= 0).all()
    assert scores.descriptors.shape == (6, 64)
    assert scores.mean_prediction.shape == (6, 32, 32) and scores.mean_prediction.max() < 3
    assert scores.entropy.shape == (6,) and (scores.entropy <= np.log(3) + 1e-6).all()
    single = score_pool([committee[0].model], images, compute)
    assert (single.uncertainty == 0).all()  # one member has no variance
    bald = bald_scores(committee[0].model, images, compute, passes=3, seed=1)
    assert bald.shape == (6,) and (bald >= -1e-6).all()
    np.testing.assert_allclose(bald, bald_scores(committee[0].model, images, compute, passes=3, seed=1))
