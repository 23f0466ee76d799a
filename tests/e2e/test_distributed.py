"""One DICOM image end to end with each service as its own OS process over PostgreSQL, RabbitMQ and S3."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from medal.bus.rabbitmq import RabbitBus
from medal.local_server import free_port
from proto import Envelope
from tests.e2e.helpers import AUTH_HEADERS, SECURE_ENV, image_page, wait_for


class Processes:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, port: int | None = None) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        if port:
            env["MEDAL_PORT"] = str(port)
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "medal.cli", *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self.running[name] = process
        return process

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "medal.cli", *args], env=self.env, capture_output=True, text=True, timeout=120
        )

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def stack(distributed_env: dict[str, str], postgres_url: str, tmp_path: Path) -> Iterator[tuple[Processes, str]]:
    env = {
        **distributed_env,
        "MEDAL_WORKER_HEARTBEAT_FILE": str(tmp_path / "heartbeat"),
    }
    processes = Processes(env, tmp_path)
    try:
        yield processes, postgres_url
    finally:
        processes.stop_all()


def wait_ready(client: httpx.Client, url: str, process: subprocess.Popen[bytes], name: str, procs: Processes) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited early:\n{procs.log(name)}")
        try:
            return client.get(f"{url}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, seconds=180, interval=0.25)


def outbox_envelopes(postgres_url: str) -> list[Envelope]:
    import asyncpg

    async def fetch() -> list[bytes]:
        conn = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
        try:
            return [row["body"] for row in await conn.fetch("SELECT body FROM messaging_outbox")]
        finally:
            await conn.close()

    return [Envelope.model_validate_json(body) for body in asyncio.run(fetch())]


def test_image_travels_across_processes_and_redelivery_changes_nothing(
    stack: tuple[Processes, str], ct_file: Path, rabbitmq_server: str, bus_namespace: str, tmp_path: Path
) -> None:
    procs, postgres_url = stack
    migrated = procs.run("migrate")
    assert migrated.returncode == 0, migrated.stderr

    ingest_port, annotation_port = free_port(), free_port()
    ingest = procs.start("ingest", "serve", "ingest", port=ingest_port)
    annotation = procs.start("annotation", "serve", "annotation", port=annotation_port)
    worker = procs.start("annotation-worker", "worker", "annotation")
    ingest_url, annotation_url = f"http://127.0.0.1:{ingest_port}", f"http://127.0.0.1:{annotation_port}"

    with httpx.Client(timeout=60, headers=AUTH_HEADERS) as client:
        wait_ready(client, ingest_url, ingest, "ingest", procs)
        wait_ready(client, annotation_url, annotation, "annotation", procs)

        response = client.post(
            f"{ingest_url}/ingest/v1/projects/chest/instances",
            content=ct_file.read_bytes(),
            headers={"content-type": "application/dicom"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["summary"]["accepted"] == 1
        image_id = response.json()["results"][0]["image_ids"][0]

        page = wait_for(lambda: (p := image_page(client, annotation_url, "chest"))["total"] == 1 and p, seconds=60)
        assert page["images"][0]["id"] == image_id
        png = client.get(f"{annotation_url}/annotation/v1/images/{image_id}/display.png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")

        # The same upload again: a duplicate, nothing stored twice, no new event.
        again = client.post(
            f"{ingest_url}/ingest/v1/projects/chest/instances",
            content=ct_file.read_bytes(),
            headers={"content-type": "application/dicom"},
        )
        assert again.json()["summary"]["duplicate"] == 1
        envelopes = [e for e in outbox_envelopes(postgres_url) if e.type == "image.ingested.v1"]
        assert len(envelopes) == 1

        # A broker redelivery of the same event: the worker takes it and changes nothing.
        bus = RabbitBus(rabbitmq_server, namespace=bus_namespace)
        for _ in range(3):
            bus.publish(envelopes[0])
        bus.close()
        wait_for(lambda: _queue_depth(rabbitmq_server, bus_namespace) == 0, seconds=30)
        time.sleep(1.0)
        assert image_page(client, annotation_url, "chest")["total"] == 1
        assert RabbitBus(rabbitmq_server, namespace=bus_namespace).dead_letters("annotation.events") == []
        assert (tmp_path / "heartbeat").exists()

    # SIGTERM: every process stops cleanly.
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0, procs.log("annotation-worker")
    assert "worker stopped" in procs.log("annotation-worker")
    for name, process in (("ingest", ingest), ("annotation", annotation)):
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught (exit status -SIGTERM).
        assert process.wait(timeout=60) in (0, -signal.SIGTERM), procs.log(name)
        assert "Application shutdown complete" in procs.log(name)


def _queue_depth(url: str, namespace: str) -> int:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        declared = connection.channel().queue_declare(queue=f"{namespace}.annotation.events", passive=True)
        return int(declared.method.message_count)
    finally:
        connection.close()


def test_serve_without_configuration_says_what_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDAL_")}
    result = subprocess.run(
        [sys.executable, "-m", "medal.cli", "serve", "ingest"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "MEDAL_DATABASE_URL" in result.stderr and "MEDAL_BROKER_URL" in result.stderr


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"MEDAL_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:9/none"}, "database"),
        ({"MEDAL_BROKER_URL": "amqp://guest:guest@127.0.0.1:9/%2F"}, "RabbitMQ"),
        ({"MEDAL_PORT": "not-a-port"}, "MEDAL_PORT"),
    ],
)
def test_unreachable_dependencies_give_one_clear_line(
    postgres_url: str, rabbitmq_server: str, s3_server: str, override: dict[str, str], expected: str
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MEDAL_")},
        **SECURE_ENV,
        "MEDAL_DATABASE_URL": postgres_url,
        "MEDAL_BROKER_URL": rabbitmq_server,
        "MEDAL_S3_ENDPOINT": s3_server,
        **override,
    }
    subprocess.run(
        [sys.executable, "-m", "medal.cli", "migrate"],
        env={**env, "MEDAL_PORT": "8000"},
        timeout=120,
        capture_output=True,
    )
    result = subprocess.run(
        [sys.executable, "-m", "medal.cli", "worker", "annotation"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
