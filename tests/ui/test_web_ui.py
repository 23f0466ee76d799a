"""The UI route: the built files when they are there, a clear 503 JSON error when they are not."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from services.annotation.web_ui import WebUi
from tests.ui.conftest import Running


def client_for(directory: Path) -> TestClient:
    return TestClient(Starlette(routes=[Mount("/ui", WebUi(directory))]))


def test_missing_build_answers_503_naming_make_setup(tmp_path: Path) -> None:
    answer = client_for(tmp_path / "static").get("/ui/")
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "ui-not-built" and "make setup" in error["message"]


def test_built_files_are_served_with_index_as_default(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>medal</title>")
    (tmp_path / "app.js").write_text("console.log('medal')")
    client = client_for(tmp_path)
    assert "<title>medal</title>" in client.get("/ui/").text
    assert client.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/missing.js").status_code == 404


def test_the_annotation_service_mounts_the_ui(running: Running) -> None:
    answer = running.http.get("/annotation/ui/")
    assert answer.status_code in (200, 503)
    if answer.status_code == 503:
        assert answer.json()["error"]["code"] == "ui-not-built"
    else:
        assert '<div id="app"' in answer.text
    assert running.http.get("/").json()["services"]["annotation"]["api"].endswith("/annotation")
