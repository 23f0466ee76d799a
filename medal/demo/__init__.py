"""`make demo`: the whole job, embedded, on real CT data.

Wrap the COVID-19 CT slices into DICOM studies with synthetic patients, ingest them (de-identified),
let a simulated radiologist label what the committee asks for over the REST API, measure every
model version on the held-out test slices, auto-label the rest, export, and report.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from medal.app import build_app
from medal.demo.annotator import DemoError, RoundScore, SimulatedAnnotator, check, evaluate, wait_for
from medal.demo.dicom_wrap import wrap_dataset
from medal.local_server import serve_in_thread
from medal.settings import SERVICE_NAMES, Settings

PROJECT = "covid-ct"
DEFAULT_DATA = Path("../shared/data/covid19-ct-seg")
CLASS_NAMES = ("background", "ground-glass", "consolidation")
PROJECT_SETTINGS: dict[str, Any] = {
    "classes": [{"name": "ground-glass", "colour": "#3cb44b"}, {"name": "consolidation", "colour": "#e6194b"}],
    "window": "ct-lung",
    "strategy": "suggestive",
    "candidates": 16,
    "batch": 8,
    "initial_labels": 8,
    "committee": 4,
    "target_dice": 0.99,
    "label_budget": 24,
    "keep_annotators_busy": False,  # the demo measures the method: each round waits for its selection
    "training": {"image_size": 64, "width": 0.25, "max_epochs": 20, "patience": 5, "batch_size": 8},
    "seed": 1,
}
TIME_LIMIT = 540.0


def say(message: str) -> None:
    print(f"medal demo: {message}", flush=True)


def run_demo(data: str | None) -> int:
    folder = Path(data) if data else DEFAULT_DATA
    if not (folder / "manifest.csv").is_file():
        print(
            f"medal demo: no data set at {folder} (expected the covid19-ct-seg folder of ../shared/data)",
            file=sys.stderr,
        )
        return 2
    settings = Settings.from_environment()
    settings.data_dir = settings.data_dir / "demo"
    if settings.database_url is None and settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)  # the demo starts from nothing each time
    started = time.perf_counter()
    slices = wrap_dataset(folder)
    say(f"wrapped {len(slices)} CT slices of {folder} into DICOM studies with synthetic patients")
    app = build_app(settings, SERVICE_NAMES, consume=True, migrate=True)
    try:
        with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=300) as http:
            say(f"platform up at {base} (API docs under /<service>/docs); state in {settings.data_dir.resolve()}")
            scores = _run(http, slices, started)
            export_dir = settings.data_dir / "export"
            _export(http, export_dir)
    except DemoError as exc:
        print(f"medal demo: {exc}", file=sys.stderr)
        return 1
    curve = settings.data_dir / "curve.png"
    _report(scores, curve, export_dir, time.perf_counter() - started)
    return 0


def _run(http: httpx.Client, slices: list[Any], started: float) -> list[RoundScore]:
    check(http.post("/annotation/v1/projects", json={"name": PROJECT, "settings": PROJECT_SETTINGS}), "create project")
    masks: dict[str, Path] = {}
    test_masks: dict[str, Path] = {}
    for first in range(0, len(slices), 25):
        batch = slices[first : first + 25]
        files = [("files", (f"slice{n}.dcm", s.dicom, "application/dicom")) for n, s in enumerate(batch)]
        body = check(http.post(f"/ingest/v1/projects/{PROJECT}/instances", files=files), "ingest")
        for result in body["results"]:
            if result["outcome"] not in ("accepted", "duplicate"):
                raise DemoError(f"slice {first + result['index']} was {result['outcome']}: {result.get('reason')}")
            wrapped = batch[result["index"]]
            (test_masks if wrapped.split == "test" else masks)[result["image_ids"][0]] = wrapped.mask_path
    say(f"ingested and de-identified {len(masks)} training and {len(test_masks)} test slices")
    wait_for(
        lambda: check(http.get(f"/annotation/v1/projects/{PROJECT}"), "project")["images"] == len(slices),
        60,
        "the annotation service to list every image",
    )
    for image_id in test_masks:
        check(http.put(f"/annotation/v1/images/{image_id}/held-out", json={"held_out": True}), "hold out")
    check(http.post(f"/annotation/v1/projects/{PROJECT}/rounds"), "start")
    annotator = SimulatedAnnotator(http, PROJECT, masks)
    scores: list[RoundScore] = []
    seen: set[str] = set()
    last_progress = 0.0
    while True:
        state = annotator.label_available()
        if time.perf_counter() - started > TIME_LIMIT:
            raise DemoError("the demo ran past its time limit")
        models = check(http.get(f"/annotation/v1/projects/{PROJECT}/models"), "models")
        for model in models:
            if model["id"] not in seen:
                seen.add(model["id"])
                scores.append(evaluate(http, PROJECT, model, test_masks, CLASS_NAMES, started))
                s = scores[-1]
                say(
                    f"model v{s.version} on {s.labels} labels: test mIoU {s.miou:.3f}, F1 {s.f1:.3f} "
                    f"({s.elapsed:.0f} s)"
                )
        if state == "training-failed" and annotator.failure:
            failure = annotator.failure
            raise DemoError(
                f"training of round {failure['round_number']} failed ({failure['code']}): {failure['reason']}"
            )
        if state == "done" and len(models) >= 1 and _autolabel_complete(http):
            return scores
        if state == "waiting-for-model" and time.monotonic() - last_progress > 15:
            last_progress = time.monotonic()
            say(f"{annotator.submitted} slices labelled; {_training_progress(http)}")
        time.sleep(1.0)


def _training_progress(http: httpx.Client) -> str:
    """One line from the trainer's job list: members done, the running ones' epochs and ETA."""
    response = http.get(f"/trainer/v1/projects/{PROJECT}/jobs")
    if response.status_code != 200:
        return "the committee is training"
    jobs = response.json()["jobs"]
    latest = max((job["round_number"] for job in jobs), default=0)
    current = [job for job in jobs if job["round_number"] == latest]
    done = sum(job["state"] == "done" for job in current)
    running = [
        f"member {job['member_index']} epoch {job['epoch'] or 0}/{job['max_epochs']}"
        + (f" (ETA {job['eta_seconds']:.0f} s)" if job.get("eta_seconds") else "")
        for job in current
        if job["state"] == "running"
    ]
    if done == len(current) and current:
        return "committee trained; the query service is choosing the next batch"
    return f"training round {latest}: {done}/{len(current)} members done" + (
        f"; {', '.join(running)}" if running else ""
    )


def _autolabel_complete(http: httpx.Client) -> bool:
    status = check(http.get(f"/annotation/v1/projects/{PROJECT}/status"), "status")
    return bool(status["autolabel"]) and all(job["complete"] for job in status["autolabel"])


def _export(http: httpx.Client, out: Path) -> None:
    response = http.get(f"/annotation/v1/projects/{PROJECT}/export", params={"format": "png"})
    if response.status_code != 200:
        raise DemoError(f"export failed: HTTP {response.status_code}")
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        archive.extractall(out)
    summary = json.loads((out / "export.json").read_text())
    say(
        f"exported {summary['images']} labelled slices ({summary['human']} by the radiologist, "
        f"{summary['machine']} by the model) to {out}"
    )


def _report(scores: list[RoundScore], curve: Path, export_dir: Path, seconds: float) -> None:
    print()
    print(f"{'model':>5} {'labels':>6} {'test mIoU':>9} {'test F1':>8} {'val Dice':>8}  per-class IoU")
    for s in scores:
        classes = ", ".join(f"{name} {value:.3f}" for name, value in s.per_class_iou.items())
        print(
            f"{'v' + str(s.version):>5} {s.labels:>6} {s.miou:>9.3f} {s.f1:>8.3f} {s.validation_dice:>8.3f}  {classes}"
        )
    _draw_curve(scores, curve)
    print(f"\nlearning curve: {curve.resolve()}")
    print(f"data set: {export_dir.resolve()}")
    print(f"medal demo: done in {seconds / 60:.1f} minutes")


def _draw_curve(scores: list[RoundScore], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    labels = [s.labels for s in scores]
    axis.plot(labels, [s.miou for s in scores], marker="o", label="test mIoU")
    axis.plot(labels, [s.f1 for s in scores], marker="s", label="test F1 (Dice)")
    axis.set_xlabel("slices labelled by the radiologist")
    axis.set_ylabel("quality on held-out slices")
    axis.set_title("medal demo: suggestive annotation on COVID-19 CT")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
