"""The UI route: the built files when they are there, a clear 503 JSON error when they are not."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.routing import Mount

from services.annotation.viewer import window
from services.annotation.web_ui import WebUi
from tests.annotation.ui.conftest import Running, labelling_project


def get(directory: Path, path: str) -> httpx.Response:
    """GET ``path`` from an app that mounts the UI of ``directory`` at /ui (in process, no server)."""
    app = Starlette(routes=[Mount("/ui", WebUi(directory))])

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as client:
            return await client.get(path)

    return asyncio.run(fetch())


def test_missing_build_answers_503_naming_make_setup(tmp_path: Path) -> None:
    answer = get(tmp_path / "static", "/ui/")
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "ui-not-built" and "make setup" in error["message"]


def test_built_files_are_served_with_index_as_default(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>medal</title>")
    (tmp_path / "app.js").write_text("console.log('medal')")
    assert "<title>medal</title>" in get(tmp_path, "/ui/").text
    assert get(tmp_path, "/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert get(tmp_path, "/ui/missing.js").status_code == 404


def test_the_annotation_service_mounts_the_ui(running: Running) -> None:
    answer = running.http.get("/annotation/ui/")
    assert answer.status_code in (200, 503)
    if answer.status_code == 503:
        assert answer.json()["error"]["code"] == "ui-not-built"
    else:
        assert 'id="app"' in answer.text and answer.headers["content-type"].startswith("text/html")
    assert running.http.get("/").json()["services"]["annotation"]["api"].endswith("/annotation")


def test_window_presets_map_modality_values_linearly() -> None:
    hu = np.array([[-1350, -600, 150, 2000]], dtype=np.int32)
    assert window(hu, -600.0, 1500.0).tolist() == [[0, 128, 255, 255]]


def test_windowed_images_and_round_task_holders(running: Running) -> None:
    image_ids = labelling_project(running, "viewer-ct")
    ct = running.http.get(f"/annotation/v1/images/{image_ids[0]}/windowed.png", params={"preset": "ct-lung"})
    display = running.http.get(f"/annotation/v1/images/{image_ids[0]}/windowed.png")
    assert ct.status_code == display.status_code == 200
    lung, plain = (np.asarray(Image.open(io.BytesIO(r.content))) for r in (ct, display))
    assert lung.shape == plain.shape and lung.dtype == np.uint8
    assert running.http.get(f"/annotation/v1/images/{image_ids[0]}/windowed.png?preset=nope").status_code == 422

    round_id = running.http.get("/annotation/v1/projects/viewer-ct/rounds").json()[0]["id"]
    leased = running.http.post("/annotation/v1/projects/viewer-ct/tasks/lease").json()
    tasks = running.http.get(f"/annotation/v1/rounds/{round_id}/tasks").json()
    assert len(tasks) == 2
    mine = next(t for t in tasks if t["task_id"] == leased["task"]["task_id"])
    assert mine["state"] == "leased" and mine["lease_owner"] == "local"  # no API keys: the local user
    missing = running.http.get("/annotation/v1/rounds/00000000-0000-0000-0000-000000000000/tasks")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "round-not-found"


def test_root_index_links_the_ui_and_ui_redirects(running: Running) -> None:
    index = running.http.get("/").json()
    assert index["ui"] == f"{running.base}/annotation/ui/"
    answer = running.http.get("/ui", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/annotation/ui/"
