"""Tiny data set folders built in a temporary directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "covid19-ct-seg"


def write_synthetic_dataset(
    root: Path, counts: dict[str, int], size: tuple[int, int] = (40, 30), rgb: bool = False, classes: int = 3
) -> Path:
    """Images with bright discs (class 1) and a dark bar (class 2 when classes > 2), and a manifest."""
    rng = np.random.default_rng(0)
    width, height = size
    rows = []
    for split, count in counts.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            yy, xx = np.mgrid[:height, :width]
            cy, cx = rng.integers(8, height - 8), rng.integers(8, width - 8)
            mask = np.zeros((height, width), np.uint8)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < 25] = 1
            if classes > 2:
                mask[height - 5 : height - 2, :] = 2
            pixels = (60 + 120 * (mask == 1) - 40 * (mask == 2) + rng.normal(0, 10, mask.shape)).clip(0, 255)
            image = pixels.astype(np.uint8)
            if rgb:
                image = np.stack([image, (image * 0.5).astype(np.uint8), image], axis=-1)
            Image.fromarray(image).save(root / "images" / split / f"{index}.png")
            Image.fromarray(mask).save(root / "masks" / split / f"{index}.png")
            rows.append(f"{split},{index}")
    header = "split,id," + ",".join(f"px_{name}" for name in ["background", "disc", "bar"][:classes])
    (root / "manifest.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return root


@pytest.fixture
def real_subset(tmp_path: Path) -> Path:
    """12 train and 4 test slices of the real covid19-ct-seg data (skips when it is not there)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data not found at {REAL_DATA}")
    root = tmp_path / "real"
    for split, count in (("train", 12), ("test", 4)):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for path in sorted((REAL_DATA / "images" / split).glob("*.jpg"))[:count]:
            shutil.copy(path, root / "images" / split / path.name)
            shutil.copy(REAL_DATA / "masks" / split / f"{path.stem}.png", root / "masks" / split)
    shutil.copy(REAL_DATA / "manifest.csv", root / "manifest.csv")
    return root
