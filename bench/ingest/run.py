"""Ingest throughput on one core: the whole path against a minimal pipeline over the same CT slices.

Whole path: ``Submission.add`` per file — read and refuse, triage, PS3.15 de-identification,
encode, rasterise (display + training PNG, compression level 1), SHA-256 and content-addressed
store (a directory), rows, outbox events and the job item in SQLite.
Minimal pipeline: read, decode, modality LUT + window, the same two PNGs at level 1; nothing else.
Both run in this process, pinned to one core, over the same uncompressed 512x512 CT slices of
../shared/data/dicom-samples, alternating rounds so that background load hits both alike.
The figure is the ratio whole/minimal (goal ≥ 0.5), by wall clock and by this process's CPU time
(the CPU figure is the one to trust on a shared, loaded machine). Results go to stdout as JSON.

    python -m bench.ingest.run [--rounds 3] [--core 0]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from medal.db.migrate import upgrade
from medal.platform import Platform
from medal.settings import Settings
from services.ingest.jobs import Submission

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "dicom-samples"
NATIVE = ("1.2.840.10008.1.2 ", "1.2.840.10008.1.2.1 ")


def ct_slices() -> list[bytes]:
    with (SAMPLES / "manifest.csv").open(newline="") as manifest:
        rows = [
            row
            for row in csv.DictReader(manifest)
            if row["modality"] == "CT"
            and row["rows"] == row["columns"] == "512"
            and row["transfer_syntax"].startswith(NATIVE)
            and row["pixels"].startswith("ok (512, 512)")
        ]
    return [(SAMPLES / row["path"]).read_bytes() for row in rows]


def minimal(data: bytes) -> tuple[bytes, bytes]:
    ds = pydicom.dcmread(io.BytesIO(data))
    stored = ds.pixel_array
    modality = apply_modality_lut(stored, ds)
    if "WindowCenter" in ds:
        shown = apply_voi_lut(modality, ds, index=0)
        low, high = float(shown.min()), float(shown.max())
    else:
        shown, low, high = modality, float(modality.min()), float(modality.max())
    display = np.clip((shown - low) / max(high - low, 1) * 255.0, 0, 255).astype(np.uint8)
    training = (np.rint(modality) - min(float(modality.min()), 0)).astype(np.uint16)
    pngs = []
    for array in (display, training):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
        pngs.append(buffer.getvalue())
    return pngs[0], pngs[1]


@dataclass(frozen=True)
class Rate:
    """Slices per second of wall-clock time and of this process's CPU time (all threads)."""

    wall: float
    cpu: float


def run_minimal(slices: list[bytes]) -> Rate:
    started, cpu = time.perf_counter(), time.process_time()
    for data in slices:
        minimal(data)
    return Rate(len(slices) / (time.perf_counter() - started), len(slices) / (time.process_time() - cpu))


async def run_whole(slices: list[bytes]) -> tuple[Rate, dict[str, int]]:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), api_keys=[])
        await asyncio.to_thread(upgrade, settings.effective_database_url)
        platform = Platform.build(settings, ["ingest"])
        try:
            submission = Submission(platform, "bench", "upload")
            await submission.start()
            started, cpu = time.perf_counter(), time.process_time()
            await submission.add_all((data, None) for data in slices)
            job = await submission.finish()
            rate = Rate(len(slices) / (time.perf_counter() - started), len(slices) / (time.process_time() - cpu))
        finally:
            platform.bus.close()
            await platform.db.dispose()
    counts = {"accepted": job.accepted, "quarantined": job.quarantined, "refused": job.refused}
    return rate, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--core", type=int, default=0)
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    slices = ct_slices()
    run_minimal(slices[:3])  # warm imports and plugins
    minimal_rates: list[Rate] = []
    whole_rates: list[Rate] = []
    counts: dict[str, int] = {}
    for _ in range(args.rounds):
        minimal_rates.append(run_minimal(slices))
        rate, counts = asyncio.run(run_whole(slices))
        whole_rates.append(rate)

    def median(rates: list[Rate], clock: str) -> float:
        return round(statistics.median(getattr(rate, clock) for rate in rates), 1)

    result = {
        "slices": len(slices),
        "rounds": args.rounds,
        "core": args.core,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "minimal_slices_per_s": {"wall": median(minimal_rates, "wall"), "cpu": median(minimal_rates, "cpu")},
        "whole_slices_per_s": {"wall": median(whole_rates, "wall"), "cpu": median(whole_rates, "cpu")},
        "ratio": {
            "wall": round(median(whole_rates, "wall") / median(minimal_rates, "wall"), 2),
            "cpu": round(median(whole_rates, "cpu") / median(minimal_rates, "cpu"), 2),
        },
        "per_round_wall": {
            "minimal": [round(r.wall, 1) for r in minimal_rates],
            "whole": [round(r.wall, 1) for r in whole_rates],
        },
        "whole_outcomes": counts,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
