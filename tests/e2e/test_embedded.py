"""One DICOM image end to end in embedded mode: SQLite, a directory, the in-process bus."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.settings import SERVICE_NAMES, Settings
from tests.e2e.helpers import image_page, wait_for


@pytest.fixture(scope="module")
def platform_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("embedded"), api_keys=[])
    app = build_app(settings, SERVICE_NAMES, consume=True, migrate=True)
    with serve_in_thread(app) as base:
        yield base, app


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as http:
        yield http


def test_dicom_upload_reaches_the_annotation_list(
    platform_url: tuple[str, Any], client: httpx.Client, ct_file: Path
) -> None:
    base, _app = platform_url
    response = client.post(
        f"{base}/ingest/v1/projects/chest/instances",
        content=ct_file.read_bytes(),
        headers={"content-type": "application/dicom"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"] == {"accepted": 1, "duplicate": 0, "refused": 0}
    image_id = body["results"][0]["image_ids"][0]

    page = wait_for(lambda: (p := image_page(client, base, "chest"))["total"] == 1 and p)
    image = page["images"][0]
    assert image["id"] == image_id
    assert (image["modality"], image["width"], image["height"]) == ("CT", 128, 128)

    png = client.get(f"{base}/annotation/v1/images/{image_id}/display.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    decoded = Image.open(io.BytesIO(png.content))
    assert decoded.size == (128, 128) and decoded.mode == "L"

    studies = client.get(f"{base}/ingest/v1/projects/chest/studies").json()["studies"]
    assert len(studies) == 1 and studies[0]["images"] == 1 and studies[0]["modalities"] == ["CT"]


def test_reupload_is_a_duplicate_and_changes_nothing(
    platform_url: tuple[str, Any], client: httpx.Client, ct_file: Path
) -> None:
    base, _app = platform_url
    files = [("files", ("a.dcm", ct_file.read_bytes(), "application/dicom"))] * 2
    response = client.post(f"{base}/ingest/v1/projects/dup/instances", files=files)
    assert response.status_code == 200
    assert response.json()["summary"] == {"accepted": 1, "duplicate": 1, "refused": 0}
    again = client.post(f"{base}/ingest/v1/projects/dup/instances", files=files[:1])
    assert again.json()["summary"]["duplicate"] == 1
    wait_for(lambda: image_page(client, base, "dup")["total"] == 1)


def test_duplicate_event_delivery_changes_nothing(
    platform_url: tuple[str, Any], client: httpx.Client, ct_file: Path
) -> None:
    """Re-publish every event ingest sent (as a broker redelivery would): the image list is unchanged."""
    import asyncio

    from sqlalchemy import select

    from medal.db.schema.messaging import outbox
    from proto import Envelope

    base, app = platform_url
    client.post(
        f"{base}/ingest/v1/projects/redeliver/instances",
        content=ct_file.read_bytes(),
        headers={"content-type": "application/dicom"},
    )
    wait_for(lambda: image_page(client, base, "redeliver")["total"] == 1)
    platform = app.state.platform

    async def sent_envelopes() -> list[Envelope]:
        async with platform.db.connect() as conn:
            rows = (await conn.execute(select(outbox.c.body))).all()
        return [Envelope.model_validate_json(row.body) for row in rows]

    envelopes = asyncio.run_coroutine_threadsafe(sent_envelopes(), platform.relay._loop).result()
    consumed_before = platform.bus.depth("annotation.events")
    for envelope in envelopes:
        platform.bus.publish(envelope)
    wait_for(lambda: platform.bus.depth("annotation.events") == consumed_before)
    from proto import decode, encode
    from services.annotation.handlers import consumer

    handle = consumer.bind(platform)["image.ingested.v1"]
    for envelope in envelopes:  # the handler itself, called again: its unit of work finds the message handled
        if envelope.type != "image.ingested.v1":
            continue
        _, payload = decode(encode(envelope))
        asyncio.run_coroutine_threadsafe(handle(envelope, payload), platform.relay._loop).result()
    for project in ("chest", "dup", "redeliver"):
        page = image_page(client, base, project)
        assert page["total"] <= 1, project
    projects = client.get(f"{base}/annotation/v1/projects").json()
    assert all(p["images"] <= 1 for p in projects)
    assert platform.bus.dead_letters("annotation.events") == []


@pytest.mark.parametrize(
    "content_type, body, status, code",
    [
        ("text/plain", b"hello", 415, "unsupported-media-type"),
        ("application/json", b"{}", 415, "unsupported-media-type"),
        ("application/dicom", b"not a dicom file at all", 422, "refused-instance"),
    ],
)
def test_bad_uploads_get_a_json_error_naming_the_problem(
    platform_url: tuple[str, Any], client: httpx.Client, content_type: str, body: bytes, status: int, code: str
) -> None:
    base, _app = platform_url
    response = client.post(
        f"{base}/ingest/v1/projects/bad/instances", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def test_bad_project_name_and_unparseable_json_get_4xx(platform_url: tuple[str, Any], client: httpx.Client) -> None:
    base, _app = platform_url
    response = client.post(
        f"{base}/ingest/v1/projects/Bad%20Name/instances", content=b"x", headers={"content-type": "application/dicom"}
    )
    assert response.status_code == 422 and "project" in response.json()["error"]["message"]
    response = client.post(
        f"{base}/annotation/v1/projects", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid-request"
    assert client.get(f"{base}/annotation/v1/projects/missing").status_code == 404
    created = client.post(f"{base}/annotation/v1/projects", json={"name": "fresh"})
    assert created.status_code == 201
    conflict = client.post(f"{base}/annotation/v1/projects", json={"name": "fresh"})
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "project-exists"


def test_every_service_has_health_readiness_metrics_and_docs(
    platform_url: tuple[str, Any], client: httpx.Client
) -> None:
    base, _app = platform_url
    assert client.get(f"{base}/healthz").json() == {"status": "ok"}
    assert client.get(f"{base}/readyz").json()["status"] == "ready"
    for service in SERVICE_NAMES:
        assert client.get(f"{base}/{service}/healthz").status_code == 200
        ready = client.get(f"{base}/{service}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "storage": "ok", "bus": "ok"}
        metrics = client.get(f"{base}/{service}/metrics")
        assert metrics.status_code == 200 and "medal_http_requests_total" in metrics.text
        spec = client.get(f"{base}/{service}/openapi.json")
        assert spec.status_code == 200 and spec.json()["info"]["title"] == f"medal {service}"
        assert client.get(f"{base}/{service}/docs").status_code == 200
    info = client.get(f"{base}/trainer/v1/info").json()
    assert info["compute"]["device"] in ("cpu", "cuda")


def test_medal_up_serves_every_service_with_its_docs(tmp_path: Path) -> None:
    """The real command: `medal up` on a free port, every service's OpenAPI docs, a clean stop."""
    import os
    import signal
    import subprocess
    import sys

    from medal.local_server import free_port
    from tests.e2e.helpers import wait_for

    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MEDAL_")}, "MEDAL_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "medal.cli", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                return httpx.get(f"{base}/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, seconds=120, interval=0.25)
        index = httpx.get(base).json()
        assert set(index["services"]) == set(SERVICE_NAMES)
        for service in SERVICE_NAMES:
            assert httpx.get(f"{base}/{service}/docs").status_code == 200
            assert httpx.get(f"{base}/{service}/openapi.json").json()["info"]["title"] == f"medal {service}"
        assert (tmp_path / "medal.db").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
