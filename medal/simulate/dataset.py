"""Loading and checking a segmentation data set folder.

Format (docs/design.md §6): ``images/<split>/<id>.<png|jpg|jpeg>``, ``masks/<split>/<id>.png`` with pixel value =
class index (0 = background), and optionally ``manifest.csv`` whose ``px_<class>`` columns name the
classes. Splits ``train`` and ``test`` are used; without ``test`` a seeded part of ``train`` is held out.
Images may be grey or RGB and of any size; they are letterboxed (padded to a square with 0) and resized
to ``size`` x ``size`` (bilinear for images, nearest for masks).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["DatasetError", "LabelledImages", "SegmentationDataset", "check_budget", "load_dataset"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DatasetError(ValueError):
    """The data set folder cannot be used; the message names the file or the numbers."""


@dataclass(frozen=True)
class LabelledImages:
    """Images (n, C, S, S) float32 in [0, 1] and masks (n, S, S) int64, with their ids."""

    ids: tuple[str, ...]
    images: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: np.ndarray) -> LabelledImages:
        index = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        return LabelledImages(tuple(self.ids[i] for i in index.tolist()), self.images[index], self.masks[index])


@dataclass(frozen=True)
class SegmentationDataset:
    """A loaded data set: the training pool, the evaluation split and the class names."""

    root: Path
    class_names: tuple[str, ...]
    train: LabelledImages
    test: LabelledImages
    test_held_out_from_train: bool

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])


def _sort_key(identifier: str) -> tuple[int, int | str]:
    return (0, int(identifier)) if identifier.isdigit() else (1, identifier)


def _class_names_from_manifest(root: Path) -> tuple[str, ...] | None:
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        return None
    with manifest.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    names = tuple(column[3:] for column in header if column.startswith("px_"))
    return names or None


def _read_image(path: Path) -> np.ndarray:
    """(H, W, C) float32 in [0, 1], C = 1 or 3."""
    with Image.open(path) as image:
        if image.mode in ("L", "P", "LA", "1"):
            return np.asarray(image.convert("L"), dtype=np.float32)[..., None] / 255.0
        if image.mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
            return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        values = np.asarray(image, dtype=np.float32)
    if values.ndim != 2:
        raise DatasetError(f"{path}: unsupported image mode")
    low, high = float(values.min()), float(values.max())
    return ((values - low) / (high - low if high > low else 1.0))[..., None]


def _read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as mask:
        values = np.asarray(mask)
    if values.ndim != 2:
        raise DatasetError(f"{path}: a mask must have one channel (class index per pixel), got shape {values.shape}")
    return values.astype(np.int64)


def _letterbox(array: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(C, H, W) -> (C, size, size): pad to a centred square with 0, then resize."""
    _, height, width = array.shape
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    padded = F.pad(array, (left, side - width - left, top, side - height - top))
    if mode == "nearest":
        return F.interpolate(padded[None], size=(size, size), mode="nearest")[0]
    return F.interpolate(padded[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def _scan_split(root: Path, split: str) -> list[tuple[str, Path, Path]]:
    image_dir = root / "images" / split
    entries = []
    for path in sorted(image_dir.iterdir(), key=lambda p: _sort_key(p.stem)):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        mask_path = root / "masks" / split / f"{path.stem}.png"
        if not mask_path.is_file():
            raise DatasetError(f"missing mask {mask_path} for image {path}")
        entries.append((path.stem, path, mask_path))
    return entries


def load_dataset(root: Path | str, size: int, seed: int = 0, holdout_fraction: float = 0.3) -> SegmentationDataset:
    """Check and load a data set folder; raise DatasetError naming the first bad file.

    Args:
        root: the folder.
        size: side of the square the images are resized to.
        seed: seeds the held-out part of ``train`` when there is no ``test`` split.
        holdout_fraction: part of ``train`` held out for evaluation when there is no ``test`` split.
    """
    root = Path(root)
    if size < 8:
        raise DatasetError(f"image size must be at least 8 pixels, got {size}")
    if not (root / "images" / "train").is_dir():
        raise DatasetError(f"{root}: no images/train folder (expected images/<split>/<id>.png|jpg)")
    splits = {"train": _scan_split(root, "train")}
    if (root / "images" / "test").is_dir():
        splits["test"] = _scan_split(root, "test")
    names = _class_names_from_manifest(root)

    raw: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    highest = 0
    for split, entries in splits.items():
        raw[split] = []
        for identifier, image_path, mask_path in entries:
            image, mask = _read_image(image_path), _read_mask(mask_path)
            if image.shape[:2] != mask.shape:
                raise DatasetError(
                    f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but image {image_path.name} is "
                    f"{image.shape[1]}x{image.shape[0]}"
                )
            if mask.min() < 0 or (names is not None and mask.max() >= len(names)):
                raise DatasetError(
                    f"{mask_path}: class values {int(mask.min())}..{int(mask.max())} are out of range "
                    f"0..{len(names) - 1 if names else 0} ({', '.join(names or ())})"
                )
            highest = max(highest, int(mask.max()))
            raw[split].append((identifier, image, mask))
    class_names = names or ("background", *(f"class_{c}" for c in range(1, max(highest, 1) + 1)))

    colour = any(image.shape[2] == 3 and not _is_grey(image) for items in raw.values() for _, image, _ in items)
    loaded = {split: _to_tensors(items, size, 3 if colour else 1) for split, items in raw.items()}
    held_out = "test" not in loaded or len(loaded["test"]) == 0
    if held_out:
        loaded["train"], loaded["test"] = _hold_out(loaded["train"], holdout_fraction, seed)
    if len(loaded["test"]) == 0:
        raise DatasetError(f"{root}: no images to evaluate on (no test split and too few train images)")
    return SegmentationDataset(root, tuple(class_names), loaded["train"], loaded["test"], held_out)


def _is_grey(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]))


def _to_tensors(items: list[tuple[str, np.ndarray, np.ndarray]], size: int, channels: int) -> LabelledImages:
    images, masks = [], []
    for _, image, mask in items:
        pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if channels == 1 and pixels.shape[0] == 3:
            pixels = pixels[:1]
        elif channels == 3 and pixels.shape[0] == 1:
            pixels = pixels.expand(3, -1, -1)
        images.append(_letterbox(pixels, size, "bilinear").clamp(0.0, 1.0))
        masks.append(_letterbox(torch.from_numpy(mask)[None].float(), size, "nearest")[0].long())
    ids = tuple(identifier for identifier, _, _ in items)
    if not items:
        return LabelledImages(ids, torch.zeros(0, channels, size, size), torch.zeros(0, size, size, dtype=torch.long))
    return LabelledImages(ids, torch.stack(images), torch.stack(masks))


def _hold_out(train: LabelledImages, fraction: float, seed: int) -> tuple[LabelledImages, LabelledImages]:
    count = len(train)
    held = round(count * fraction)
    if count < 2 or held < 1:
        raise DatasetError(f"no test split and only {count} train images: too few to hold some out")
    order = np.random.default_rng(seed).permutation(count)
    return train.subset(np.sort(order[held:])), train.subset(np.sort(order[:held]))


def check_budget(pool_size: int, initial: int, K: int, k: int) -> None:
    """Raise DatasetError when the training pool is too small for the asked initial/K/k."""
    if initial < 2:
        raise DatasetError(f"--initial must be at least 2 (bootstrap and validation need 2 images), got {initial}")
    if k < 1 or k > K:
        raise DatasetError(f"need 1 <= k <= K, got K={K}, k={k}")
    if pool_size < initial + k:
        raise DatasetError(
            f"the training pool has {pool_size} images, too few for --initial {initial} plus one batch of --k {k}"
        )
