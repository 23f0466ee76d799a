"""Screenshots of the web UI's main pages for docs/ui/ and the README (run by hand, not in CI).

    .venv/bin/python -m bench.ui.screenshots [--data ../shared/data/covid19-ct-seg] [--out docs/ui]

Runs every service embedded on a temporary data dir, ingests COVID-19 CT slices wrapped as DICOM,
lets the demo's simulated radiologist label two rounds so the model page has versions and a curve,
then drives headless Chromium through the projects, rounds, queue, canvas, review and model pages.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from tests.ui.browser import chromium, missing

from medal.app import build_app
from medal.demo.annotator import SimulatedAnnotator, check, wait_for
from medal.demo.dicom_wrap import wrap_dataset
from medal.local_server import serve_in_thread
from medal.settings import SERVICE_NAMES, Settings

PROJECT = "covid-ct"
SETTINGS: dict[str, Any] = {
    "classes": [{"name": "ground-glass", "colour": "#3cb44b"}, {"name": "consolidation", "colour": "#e6194b"}],
    "window": "image",  # the demo's slices are synthetic HU: the ingest display window shows them best
    "strategy": "suggestive",
    "candidates": 8,
    "batch": 4,
    "initial_labels": 6,
    "committee": 2,
    "target_dice": 0.95,
    "label_budget": 30,
    "keep_annotators_busy": False,
    "training": {"image_size": 64, "width": 0.25, "max_epochs": 8, "patience": 3, "batch_size": 8},
    "seed": 1,
}


def prepare(http: httpx.Client, data: Path, slices: int, models: int) -> None:
    wrapped = [s for s in wrap_dataset(data) if s.split != "test"][:slices]
    masks: dict[str, Path] = {}
    check(http.post("/annotation/v1/projects", json={"name": PROJECT, "settings": SETTINGS}), "create project")
    for first in range(0, len(wrapped), 20):
        batch = wrapped[first : first + 20]
        files = [("files", (f"slice{n}.dcm", s.dicom, "application/dicom")) for n, s in enumerate(batch)]
        body = check(http.post(f"/ingest/v1/projects/{PROJECT}/instances", files=files), "ingest")
        for result in body["results"]:
            masks[result["image_ids"][0]] = batch[result["index"]].mask_path
    wait_for(
        lambda: check(http.get(f"/annotation/v1/projects/{PROJECT}"), "project")["images"] == len(masks), 120, "images"
    )
    check(http.post(f"/annotation/v1/projects/{PROJECT}/rounds"), "start")
    annotator = SimulatedAnnotator(http, PROJECT, masks)
    deadline = time.monotonic() + 900
    while len(check(http.get(f"/annotation/v1/projects/{PROJECT}/models"), "models")) < models:
        if time.monotonic() > deadline:
            raise SystemExit("the committee did not train in time")
        annotator.label_available()
        time.sleep(1)
    # The next round's tasks: wait until the selection opened it, lease one (the queue shows it held).
    wait_for(
        lambda: any(r["state"] == "open" for r in http.get(f"/annotation/v1/projects/{PROJECT}/rounds").json()),
        300,
        "next round",
    )
    check(http.post(f"/annotation/v1/projects/{PROJECT}/tasks/lease"), "lease")


def shoot(base: str, out: Path) -> None:
    with chromium(1440, 980) as driver:
        wait = WebDriverWait(driver, 60, poll_frequency=0.2)

        def page(route: str, name: str, ready: str, settle: float = 1.0) -> None:
            driver.get("about:blank")
            driver.get(f"{base}/annotation/ui/{route}")
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ready))
            time.sleep(settle)
            driver.save_screenshot(str(out / f"{name}.png"))
            print(f"wrote {out / name}.png")

        page("#/", "projects", "[data-testid=projects]")
        page(f"#/p/{PROJECT}", "rounds", ".round")
        page(f"#/p/{PROJECT}/model", "model", "svg.curve")
        page(f"#/p/{PROJECT}/review", "review", ".image-card", settle=3)
        page(f"#/p/{PROJECT}/queue", "queue", "[data-testid=queue]")
        driver.find_element(By.CSS_SELECTOR, "[data-action=next]").click()
        canvas = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=mask-canvas]"))[0]
        wait.until(
            lambda d: "pre-annotated" in d.execute_script("return document.querySelector('.label-head').textContent")
        )
        actions = ActionChains(driver, duration=15)
        actions.move_to_element_with_offset(canvas, -60, 40).click_and_hold()
        for _ in range(10):
            actions.move_by_offset(10, -3)
        actions.release().perform()
        time.sleep(1)
        driver.save_screenshot(str(out / "canvas.png"))
        print(f"wrote {out / 'canvas.png'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/covid19-ct-seg"))
    parser.add_argument("--out", type=Path, default=Path("docs/ui"))
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--models", type=int, default=2)
    args = parser.parse_args()
    if (what := missing()) is not None:
        raise SystemExit(f"cannot take screenshots without {what}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medal-shots-") as tmp:
        app = build_app(Settings(data_dir=Path(tmp)), SERVICE_NAMES, consume=True, migrate=True)
        with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=300) as http:
            prepare(http, args.data, args.slices, args.models)
            shoot(base, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
