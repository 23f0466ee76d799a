"""Display PNGs match dcmtk's dcmj2pnm within ±1 grey level on uncompressed data (checked-in goldens)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.ingest.parsing import read_dicom
from services.ingest.raster import rasterise
from tests.ingest.conftest import samples_dir
from tests.ingest.raster_goldens import CASES, GOLDENS, GoldenCase


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_display_png_matches_dcmj2pnm(case: GoldenCase) -> None:
    samples_dir()
    ds = read_dicom(case.dataset_bytes(), max_pixel_bytes=1024**3)
    frames = rasterise(ds, preset=case.preset)
    ours = np.asarray(Image.open(io.BytesIO(frames[case.frame].display_png))).astype(np.int32)
    golden_image = Image.open(GOLDENS / f"{case.name}.png")
    golden = np.asarray(golden_image.convert("RGB") if ours.ndim == 3 else golden_image).astype(np.int32)
    assert ours.shape == golden.shape
    assert int(np.abs(ours - golden).max()) <= case.tolerance
