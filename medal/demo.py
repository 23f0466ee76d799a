"""`make demo` for now: start embedded, ingest a real CT study over HTTP, list what annotation offers."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.settings import SERVICE_NAMES, Settings

PROJECT = "demo-ct"
SHARED_STUDY = Path("../shared/data/dicom-samples/dcm_qa_ct/GE")


def sample_files(folder: str | None) -> list[Path]:
    """The given folder, else the GE CT study of ../shared, else pydicom's bundled CT and MR slices."""
    if folder:
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
        if not files:
            raise SystemExit(f"medal demo: no files in {folder}")
        return files
    if SHARED_STUDY.is_dir():
        return sorted(SHARED_STUDY.glob("*.dcm"))
    from pydicom.data import get_testdata_file

    return [Path(str(get_testdata_file(name))) for name in ("CT_small.dcm", "MR_small.dcm")]


def run_demo(folder: str | None) -> int:
    settings = Settings.from_environment()
    settings.data_dir = settings.data_dir / "demo"
    if settings.database_url is None and settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)  # the demo starts from nothing each time
    files = sample_files(folder)
    print(f"medal demo: embedded platform, state in {settings.data_dir.resolve()}")
    app = build_app(settings, SERVICE_NAMES, consume=True, migrate=True)
    started = time.perf_counter()
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=120) as client:
        print(f"medal demo: services up at {base} ({', '.join(f'/{s}/docs' for s in SERVICE_NAMES)})")
        multipart = [
            ("files", (f"file{i}.dcm", path.read_bytes(), "application/dicom")) for i, path in enumerate(files)
        ]
        response = client.post(f"/ingest/v1/projects/{PROJECT}/instances", files=multipart)
        response.raise_for_status()
        summary = response.json()["summary"]
        print(
            f"medal demo: ingested {len(files)} DICOM files: {summary['accepted']} accepted, "
            f"{summary['duplicate']} duplicate, {summary['refused']} refused"
        )
        for result in response.json()["results"]:
            if result["outcome"] == "refused":
                print(f"  file {result['index']}: refused: {result['reason']}")
        expected = sum(len(r["image_ids"]) for r in response.json()["results"] if r["outcome"] == "accepted")
        page = _wait_for_images(client, expected)
    print(f"\nThe annotation service lists {page['total']} images in project {PROJECT}:")
    print(f"{'image id':38} {'modality':8} {'size':>9} {'frame':>5}  study")
    for image in page["images"]:
        size = f"{image['width']}x{image['height']}"
        print(f"{image['id']:38} {image['modality']:8} {size:>9} {image['frame']:>5}  {image['study_id'][:8]}")
    print(f"\nmedal demo: done in {time.perf_counter() - started:.1f} s")
    return 0 if page["total"] == expected and expected > 0 else 1


def _wait_for_images(client: httpx.Client, expected: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        response = client.get(f"/annotation/v1/projects/{PROJECT}/images", params={"limit": 1000})
        if response.status_code == 200 and response.json()["total"] >= expected:
            page: dict[str, Any] = response.json()
            return page
        if time.monotonic() > deadline:
            print("medal demo: images did not reach the annotation service within 60 s", file=sys.stderr)
            return response.json() if response.status_code == 200 else {"total": 0, "images": []}
        time.sleep(0.2)
