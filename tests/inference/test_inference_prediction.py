"""Committee prediction and the committee cache, without a database."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from medal.model.committees import CommitteeCache
from medal.model.device import ComputeDevice
from medal.model.fcn import SuggestiveFCN
from medal.model.weights import save_member
from services.inference.prediction import confidences, mean_probabilities, predict_masks
from tests.committee_helpers import TINY, png16

CPU = ComputeDevice(torch.device("cpu"), mixed_precision=False)


def tiny_member(seed: int) -> SuggestiveFCN:
    torch.manual_seed(seed)
    return SuggestiveFCN(1, 2, width=1 / 16, blocks_per_stage=(1, 1, 1, 1, 1)).eval()


def test_confidence_is_the_pixel_mean_of_the_top_probability() -> None:
    probabilities = torch.zeros(2, 3, 2, 2)
    probabilities[0] = 1 / 3  # undecided everywhere
    probabilities[1, 0] = 1.0  # certain everywhere
    probabilities[1, :, 0, 0] = torch.tensor([0.5, 0.25, 0.25])
    assert np.allclose(confidences(probabilities), [1 / 3, (3 + 0.5) / 4])


def test_committee_mean_is_the_mean_of_member_softmax() -> None:
    members = [tiny_member(0), tiny_member(1)]
    images = torch.randn(3, 1, 16, 16)
    mean = mean_probabilities(members, images, CPU, batch_size=2)
    with torch.no_grad():
        expected = torch.stack([torch.softmax(m(images)[0], dim=1) for m in members]).mean(dim=0)
    assert mean.shape == (3, 2, 16, 16) and torch.allclose(mean, expected, atol=1e-6)


def test_masks_come_back_at_each_image_size() -> None:
    pngs = [png16(20, 12, 0), png16(7, 33, 1)]
    masks = predict_masks([tiny_member(0)], pngs, [0, 0], 16, CPU)
    sizes = [Image.open(io.BytesIO(m.png)).size for m in masks]
    assert sizes == [(20, 12), (7, 33)] and [(m.width, m.height) for m in masks] == sizes
    assert all(0.5 <= m.confidence <= 1.0 for m in masks)


def test_cache_loads_each_version_once_and_drops_the_least_recently_used() -> None:
    files = {f"weights/{i}.pt": save_member(tiny_member(i), TINY) for i in range(2)}
    fetched: list[str] = []

    def fetch(key: str) -> bytes:
        fetched.append(key)
        return files[key]

    cache = CommitteeCache(fetch, device="cpu", capacity=1)
    first = cache.get("v1", ["weights/0.pt", "weights/1.pt"])
    assert cache.get("v1", ["weights/0.pt", "weights/1.pt"]) is first and cache.loads == 1
    assert len(first) == 2 and not first[0].training
    cache.get("v2", ["weights/1.pt"])
    cache.get("v1", ["weights/0.pt", "weights/1.pt"])  # evicted by v2: loaded again
    assert cache.loads == 3 and len(fetched) == 5
