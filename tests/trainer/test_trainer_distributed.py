"""Two trainer workers as OS processes over PostgreSQL, RabbitMQ and S3; one is SIGKILLed mid-training.

The killed worker's job is claimed again by the other once its lease expires: the round completes
with exactly one model version, every member trained to completion once (the reclaimed one on its
second attempt), exactly one model.trained.v2 queued and no round failed.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medal.bus.rabbitmq import RabbitBus
from medal.settings import Settings
from medal.storage import build_store
from proto.loop import TrainingSpec
from tests.e2e.helpers import wait_for
from tests.trainer.conftest import round_completed

# Long enough (a few seconds per member on a busy 2-core CPU) to kill a worker in the middle.
SPEC = TrainingSpec(num_classes=2, image_size=16, width=1 / 16, max_epochs=6, patience=100, batch_size=8)


class Workers:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "medal.cli", "worker", "trainer"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def query(postgres_url: str, sql: str) -> list[dict[str, Any]]:
    import asyncpg

    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
        try:
            return [dict(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


@pytest.fixture
def workers(distributed_env: dict[str, str], postgres_url: str, tmp_path: Path) -> Iterator[Workers]:
    env = {
        **distributed_env,
        "MEDAL_TRAINER_LEASE_SECONDS": "4",
        "MEDAL_TRAINER_HEARTBEAT_SECONDS": "1",
        "MEDAL_TRAINER_THREADS": "1",  # two workers on a shared 2-core machine: oversubscribed threads crawl
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "medal.cli", "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    pool = Workers(env, tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def test_a_killed_workers_member_is_trained_by_the_other_and_the_round_completes_once(
    workers: Workers, postgres_url: str, rabbitmq_server: str, bus_namespace: str, s3_server: str, s3_bucket: str
) -> None:
    first, second = workers.start("trainer-a"), workers.start("trainer-b")
    for name, process in (("trainer-a", first), ("trainer-b", second)):
        wait_for(
            lambda n=name, p=process: (p.poll() is None and "job loop" in workers.log(n)) or p.poll() is not None,
            seconds=60,
            interval=0.25,
        )
        assert process.poll() is None, workers.log(name)

    settings = Settings(s3_endpoint=s3_server, s3_access_key="testing", s3_secret_key="testing", s3_bucket=s3_bucket)
    store = build_store(settings)
    envelope, event = round_completed(store, committee=2, spec=SPEC)
    bus = RabbitBus(rabbitmq_server, namespace=bus_namespace)
    started = time.monotonic()
    bus.publish(envelope)

    # Kill whichever worker is training once it has reported an epoch.
    pids = {str(first.pid): (first, "trainer-a"), str(second.pid): (second, "trainer-b")}
    running = wait_for(
        lambda: query(
            postgres_url, "SELECT member_index, lease_owner FROM trainer_jobs WHERE state = 'running' AND epoch >= 1"
        ),
        seconds=60,
        interval=0.2,
    )
    victim_member = running[0]["member_index"]
    victim, _ = pids[running[0]["lease_owner"].rsplit(":", 1)[1]]
    survivor, survivor_name = (second, "trainer-b") if victim is first else (first, "trainer-a")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)

    versions = wait_for(
        lambda: query(postgres_url, "SELECT version, round_id, members, status FROM trainer_model_versions"),
        seconds=120,
        interval=0.5,
    )
    elapsed = time.monotonic() - started
    time.sleep(2.0)  # anything still in flight would show up now
    assert len(query(postgres_url, "SELECT id FROM trainer_model_versions")) == 1
    assert versions[0]["round_id"] == str(event.round_id) and versions[0]["status"] == "current"

    jobs = {
        row["member_index"]: row
        for row in query(
            postgres_url, "SELECT member_index, state, attempts, lease_owner, weights_key FROM trainer_jobs"
        )
    }
    assert {index: row["state"] for index, row in jobs.items()} == {0: "done", 1: "done"}
    assert jobs[victim_member]["attempts"] == 2, workers.log(survivor_name)
    assert jobs[1 - victim_member]["attempts"] == 1
    assert jobs[victim_member]["lease_owner"].endswith(f":{survivor.pid}")
    assert all(store.exists(row["weights_key"]) for row in jobs.values())

    outbox = query(postgres_url, "SELECT message_type, count(*) AS n FROM messaging_outbox GROUP BY message_type")
    counts = {row["message_type"]: row["n"] for row in outbox}
    assert counts == {"model.trained.v2": 1, "model.promoted.v1": 1}
    assert bus.dead_letters("trainer.commands") == []
    bus.close()
    assert elapsed < 60, f"round took {elapsed:.0f} s:\n{workers.log(survivor_name)}"
    print(f"round with a killed worker completed in {elapsed:.1f} s")

    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=60) == 0, workers.log(survivor_name)
    assert "lease lost" not in workers.log(survivor_name)
