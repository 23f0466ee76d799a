"""Golden rasterisation cases: our display PNG against dcmtk's ``dcmj2pnm`` (Debian dcmtk 3.6.7).

Each case names a file of ../shared/data/dicom-samples (or a deterministic variant of one), the
dcmj2pnm options that select the same window, and the preset medal would use. The goldens in
``goldens/`` were made with ``python -m tests.ingest.raster_goldens`` (needs ``dcmj2pnm``; CI only
compares against the checked-in PNGs, so dcmtk is not a CI dependency).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from services.ingest.raster import Window
from tests.conftest import SHARED

GOLDENS = Path(__file__).with_name("goldens")
SAMPLES = SHARED / "data" / "dicom-samples"


def _mono1(ds: Dataset) -> None:
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.WindowCenter, ds.WindowWidth = 40, 400


def _sigmoid(ds: Dataset) -> None:
    ds.VOILUTFunction = "SIGMOID"


@dataclass(frozen=True)
class GoldenCase:
    name: str
    source: str
    dcmtk: list[str]
    preset: Window | None = None
    frame: int = 0
    tolerance: int = 1
    variant: Callable[[Dataset], None] | None = field(default=None, compare=False)

    def dataset_bytes(self) -> bytes:
        data = (SAMPLES / self.source).read_bytes()
        if self.variant is None:
            return data
        ds = pydicom.dcmread(io.BytesIO(data))
        self.variant(ds)
        buffer = io.BytesIO()
        ds.save_as(buffer)
        return buffer.getvalue()


CASES = [
    GoldenCase("ct_min_max", "pydicom-test-files/CT_small.dcm", ["+Wm"]),
    GoldenCase("ct_preset_40_400", "pydicom-test-files/CT_small.dcm", ["+Ww", "40", "400"], Window(40, 400)),
    GoldenCase("ct_monochrome1", "pydicom-test-files/CT_small.dcm", ["+Wi", "1"], variant=_mono1),
    GoldenCase("mr_file_window", "pydicom-test-files/MR_small.dcm", ["+Wi", "1"]),
    GoldenCase("mr_sigmoid", "pydicom-test-files/MR_small.dcm", ["+Wi", "1"], variant=_sigmoid),
    GoldenCase("mr_big_endian", "pydicom-test-files/MR_small_bigendian.dcm", ["+Wi", "1"]),
    GoldenCase("modality_lut", "pydicom-data/mlut_18.dcm", ["+Wm"]),
    GoldenCase("voi_lut", "pydicom-data/vlut_04.dcm", ["+Wl", "1"]),
    GoldenCase("rgb_planar_1", "pydicom-data/color-pl.dcm", []),
    GoldenCase("rgb_big_endian", "pydicom-data/SC_rgb_expb.dcm", []),
    GoldenCase("rgb_16bit", "pydicom-data/SC_rgb_16bit.dcm", []),
    # YCbCr → RGB: pydicom and dcmtk round the conversion differently (measured max 2)
    GoldenCase("ybr_full", "pydicom-data/SC_ybr_full_uncompressed.dcm", [], tolerance=2),
    GoldenCase("ybr_full_422", "pydicom-test-files/SC_ybr_full_422_uncompressed.dcm", []),
    GoldenCase("palette", "pydicom-test-files/examples_palette.dcm", []),
    GoldenCase("enhanced_mr_frame_1", "pydicom-data/emri_small.dcm", ["+Wm", "+F", "1"]),
    GoldenCase("enhanced_mr_frame_5", "pydicom-data/emri_small.dcm", ["+Wm", "+F", "5"], frame=4),
    # the file's per-frame window (FrameVOILUTSequence 49/102, rescale -1024 per frame) against dcmtk given it
    GoldenCase("enhanced_ct_frame_2", "pydicom-data/eCT_Supplemental.dcm", ["+Ww", "49", "102", "+F", "2"], frame=1),
]


def make(case: GoldenCase) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.dcm"
        source.write_bytes(case.dataset_bytes())
        target = GOLDENS / f"{case.name}.png"
        frame = [] if "+F" in case.dcmtk else ["+F", "1"]
        command = ["dcmj2pnm", "+on", "-O", *frame, *case.dcmtk, str(source), str(target)]
        subprocess.run(command, check=True, capture_output=True)


if __name__ == "__main__":
    GOLDENS.mkdir(exist_ok=True)
    for golden_case in CASES:
        try:
            make(golden_case)
            print(f"made {golden_case.name}")
        except subprocess.CalledProcessError as exc:
            print(f"failed {golden_case.name}: {exc.stderr.decode()[:200]}", file=sys.stderr)
