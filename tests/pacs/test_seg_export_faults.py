"""SEG export to an archive that is down, slow, answers errors or refuses a SEG: every object is reported,
retried or refused, nothing half-sent silently; and `medal export --stow` prints the same outcomes."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from PIL import Image

from medal.app import build_app
from medal.cli import main as medal_cli
from medal.local_server import free_port, serve_in_thread
from medal.settings import Settings
from tests.e2e.helpers import wait_for
from tests.pacs.conftest import instance

PROJECT = "faults"


@dataclass
class FakeArchive:
    """A STOW-RS endpoint whose answers the test chooses: a list of modes, one per request (the last repeats)."""

    modes: list[str] = field(default_factory=lambda: ["ok"])
    requests: list[list[str]] = field(default_factory=list)
    stored: set[str] = field(default_factory=set)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/dicom-web/studies")
        async def stow(request: Request) -> Response:
            mode = self.modes[min(len(self.requests), len(self.modes) - 1)]
            uids = _sop_uids(await request.body(), request.headers["content-type"])
            self.requests.append(uids)
            if mode == "slow":
                await asyncio.sleep(3)
            if mode == "busy":
                return JSONResponse({}, status_code=503)
            if mode == "bad-request":
                return JSONResponse({}, status_code=400)
            if mode == "redirect":
                return Response(status_code=307, headers={"location": "http://10.9.9.9/studies"})
            refused = uids[:1] if mode == "refuse-first" else []
            silent = uids[:1] if mode == "forget-first" else []
            kept = [u for u in uids if u not in refused and u not in silent]
            self.stored.update(kept)
            body: dict[str, object] = {
                "00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": [u]}} for u in kept]}
            }
            if refused:
                failed = [
                    {"00081155": {"vr": "UI", "Value": [u]}, "00081197": {"vr": "US", "Value": [49152]}}
                    for u in refused
                ]
                body["00081198"] = {"vr": "SQ", "Value": failed}
            return JSONResponse(
                body, status_code=202 if refused or silent else 200, media_type="application/dicom+json"
            )

        return app


def _sop_uids(body: bytes, content_type: str) -> list[str]:
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    assert boundary is not None
    uids = []
    for part in body.split(b"--" + boundary.group(1).encode())[1:-1]:
        data = part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")
        uids.append(str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID))
    return uids


@pytest.fixture(scope="module")
def archive() -> Iterator[tuple[FakeArchive, str]]:
    fake = FakeArchive()
    with serve_in_thread(fake.app()) as url:
        yield fake, f"{url}/dicom-web"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, archive: tuple[FakeArchive, str]) -> Iterator[tuple[str, int]]:
    down = f"http://127.0.0.1:{free_port()}/dicom-web"  # nothing listens there
    settings = Settings(
        data_dir=Path(tmp_path_factory.mktemp("faults")),
        api_keys=[],
        dicomweb_allowed_urls=[archive[1], down],
        dicomweb_timeout_seconds=1,
        dicomweb_retries=2,
        stow_batch_objects=2,
    )
    with serve_in_thread(build_app(settings, ["annotation", "ingest"], consume=True, migrate=True)) as url:
        http = httpx.Client(base_url=url, timeout=60)
        settings_body = {
            "classes": [{"name": "lesion", "colour": "#ff0000"}],
            "initial_labels": 3,
            "candidates": 3,
            "batch": 1,
        }
        assert (
            http.post("/annotation/v1/projects", json={"name": PROJECT, "settings": settings_body}).status_code == 201
        )
        files = [("files", (f"{n}.dcm", instance(50, 1, n), "application/dicom")) for n in (1, 2, 3)]
        assert http.post(f"/ingest/v1/projects/{PROJECT}/instances", files=files).status_code == 200
        wait_for(lambda: http.get(f"/annotation/v1/projects/{PROJECT}").json().get("images") == 3, seconds=60)
        images = http.get(f"/annotation/v1/projects/{PROJECT}/images").json()["images"]
        for number, image in enumerate(images):
            mask = np.zeros((image["height"], image["width"]), dtype=np.uint8)
            if number < 2:  # the third mask stays empty: no SEG can be made of it
                mask[10:30, 10:30] = 1
            png = io.BytesIO()
            Image.fromarray(mask, mode="L").save(png, format="PNG")
            saved = http.put(
                f"/annotation/v1/images/{image['id']}/mask",
                content=png.getvalue(),
                headers={"content-type": "image/png", "If-Match": "0"},
            )
            assert saved.status_code == 200, saved.text
        yield url, int(down.split(":")[2].split("/")[0])


def _export(url: str, target: str, **extra: object) -> httpx.Response:
    body = {"url": target, **extra}
    return httpx.post(f"{url}/annotation/v1/projects/{PROJECT}/exports/stow", json=body, timeout=120)


def _outcomes(report: dict[str, object]) -> list[tuple[object, object]]:
    return sorted((r["outcome"], r["code"]) for r in report["results"])  # type: ignore[index, union-attr]


def test_each_object_is_reported_whatever_the_archive_does(
    running: tuple[str, int], archive: tuple[FakeArchive, str]
) -> None:
    url, down_port = running
    fake, target = archive
    fake.modes = ["busy", "ok"]  # a 503, then the same request again: stored on the second attempt
    report = _export(url, target).json()
    assert _outcomes(report) == [("sent", None), ("sent", None), ("skipped", None)]
    assert [r["attempts"] for r in report["results"] if r["outcome"] == "sent"] == [2, 2]
    assert fake.requests[0] == fake.requests[1]  # the retry resent the very same objects
    skipped = next(r for r in report["results"] if r["outcome"] == "skipped")
    assert skipped["reason"] == "the mask has no foreground" and skipped["seg_sop_uid"] is None

    fake.modes, fake.requests = ["refuse-first"], []
    report = _export(url, target).json()
    assert _outcomes(report)[:2] == [("failed", "archive_refused"), ("sent", None)]
    refused = next(r for r in report["results"] if r["outcome"] == "failed")
    assert "0xC000" in refused["reason"] and refused["seg_sop_uid"] == fake.requests[0][0]

    fake.modes, fake.requests = ["forget-first"], []  # a 202 that leaves one out: not assumed stored
    assert _outcomes(_export(url, target).json())[:2] == [("failed", "not_acknowledged"), ("sent", None)]

    fake.modes, fake.requests = ["bad-request"], []  # refused outright: not retried
    report = _export(url, target).json()
    assert _outcomes(report)[:2] == [("failed", "archive_refused")] * 2 and len(fake.requests) == 1

    fake.modes, fake.requests = ["slow"], []  # over MEDAL_DICOMWEB_TIMEOUT_SECONDS, every attempt
    report = _export(url, target).json()
    assert _outcomes(report)[:2] == [("failed", "pacs_timeout")] * 2 and len(fake.requests) == 2
    assert "export again" in report["results"][0]["reason"] + report["results"][1]["reason"]

    fake.modes, fake.requests = ["redirect"], []  # never followed
    assert _outcomes(_export(url, target).json())[:2] == [("failed", "archive_refused")] * 2

    report = _export(url, f"http://127.0.0.1:{down_port}/dicom-web").json()
    assert _outcomes(report)[:2] == [("failed", "pacs_unreachable")] * 2 and report["failed"] == 2


def test_bad_requests_are_refused_before_anything_is_sent(
    running: tuple[str, int], archive: tuple[FakeArchive, str]
) -> None:
    url, _ = running
    fake, target = archive
    fake.requests = []
    for bad in ("http://169.254.169.254/latest", "ftp://pacs/dicom-web", f"{target}?x=1", "http://user@127.0.0.1/x"):
        refused = _export(url, bad)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "dicomweb-url-not-allowed"
    off = _export(url, target, reference="original")  # the project keeps no original UIDs
    assert off.status_code == 412 and off.json()["error"]["code"] == "original-uids-off"
    assert _export(url, target, reference="clinical").status_code == 422
    missing = httpx.post(f"{url}/annotation/v1/projects/nobody/exports/stow", json={"url": target})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "project-not-found"
    assert fake.requests == []


def test_the_cli_prints_each_outcome_and_exits_1_on_failures(
    running: tuple[str, int], archive: tuple[FakeArchive, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = running
    fake, target = archive
    fake.modes, fake.requests = ["ok"], []
    args = ["export", "--project", PROJECT, "--format", "dicom-seg", "--stow", target, "--server", url]
    assert medal_cli(args) == 0
    printed = capsys.readouterr().out
    assert (
        printed.count("sent     image") == 2
        and printed.count("skipped  image") == 1
        and "2 SEG objects sent" in printed
    )
    fake.modes = ["refuse-first"]
    assert medal_cli(args) == 1
    assert "archive_refused" in capsys.readouterr().out
    assert medal_cli(["export", "--project", PROJECT, "--format", "png", "--stow", target, "--server", url]) == 2
