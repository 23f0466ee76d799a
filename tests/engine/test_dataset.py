"""Data set folder loading and the errors for bad folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medal.simulate.dataset import DatasetError, check_budget, load_dataset
from tests.engine.conftest import write_synthetic_dataset


def test_loads_grey_images_letterboxed(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path, {"train": 4, "test": 2})
    dataset = load_dataset(root, size=32)
    assert dataset.class_names == ("background", "disc", "bar")
    assert dataset.train.images.shape == (4, 1, 32, 32)
    assert dataset.train.masks.shape == (4, 32, 32)
    assert float(dataset.train.images.min()) >= 0 and float(dataset.train.images.max()) <= 1
    assert set(dataset.train.masks.unique().tolist()) == {0, 1, 2}
    assert not dataset.test_held_out_from_train


def test_rgb_images_keep_three_channels(tmp_path: Path) -> None:
    dataset = load_dataset(write_synthetic_dataset(tmp_path, {"train": 3, "test": 1}, rgb=True), size=16)
    assert dataset.in_channels == 3


def test_without_test_split_holds_out_part_of_train(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path, {"train": 10}, classes=2)
    first, second = load_dataset(root, 16, seed=1), load_dataset(root, 16, seed=1)
    assert first.test_held_out_from_train
    assert len(first.train) == 7 and len(first.test) == 3
    assert first.test.ids == second.test.ids
    assert not set(first.test.ids) & set(first.train.ids)


def test_missing_mask_names_the_file(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path, {"train": 3, "test": 1})
    (root / "masks" / "train" / "1.png").unlink()
    with pytest.raises(DatasetError, match=r"missing mask .*masks/train/1\.png"):
        load_dataset(root, 16)


def test_mask_size_mismatch_names_the_file(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path, {"train": 3, "test": 1})
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "masks" / "train" / "2.png")
    with pytest.raises(DatasetError, match=r"masks/train/2\.png: mask is 5x5 but image 2\.png is 40x30"):
        load_dataset(root, 16)


def test_class_value_out_of_range_names_the_file(tmp_path: Path) -> None:
    root = write_synthetic_dataset(tmp_path, {"train": 3, "test": 1})
    Image.fromarray(np.full((30, 40), 7, np.uint8)).save(root / "masks" / "test" / "0.png")
    with pytest.raises(DatasetError, match=r"masks/test/0\.png: class values 7\.\.7 are out of range 0\.\.2"):
        load_dataset(root, 16)


def test_too_few_images_for_the_budget() -> None:
    with pytest.raises(DatasetError, match="has 10 images, too few for --initial 8 plus one batch of --k 4"):
        check_budget(10, initial=8, K=8, k=4)
    with pytest.raises(DatasetError, match="K=2, k=4"):
        check_budget(50, initial=8, K=2, k=4)
    check_budget(12, initial=8, K=8, k=4)
