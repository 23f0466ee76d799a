"""Shared fixtures: real PostgreSQL, RabbitMQ and an S3 server process for integration tests.

On a laptop without them those tests skip; under CI=true a missing dependency fails the run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("MEDAL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("MEDAL_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")
SHARED = Path(__file__).resolve().parents[2] / "shared"


def unavailable(what: str) -> None:
    """Skip on a laptop, fail under CI=true."""
    if CI:
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what} not available")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> str:
    if not port_open("127.0.0.1", 5432):
        unavailable("PostgreSQL on 127.0.0.1:5432")
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test (asyncpg URL), dropped afterwards."""
    import asyncpg

    name = f"medal_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(postgres_server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = postgres_server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for one test: a SQLite file, then a fresh PostgreSQL database (not migrated)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'medal.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def rabbitmq_server() -> str:
    if not port_open("127.0.0.1", 5672):
        unavailable("RabbitMQ on 127.0.0.1:5672")
    return AMQP_URL


@pytest.fixture
def bus_namespace(rabbitmq_server: str) -> Iterator[str]:
    """A unique exchange/queue prefix for one test; its topology is deleted afterwards."""
    from medal.bus.rabbitmq import RabbitBus

    namespace = f"t-{uuid.uuid4().hex[:10]}"
    yield namespace
    RabbitBus(rabbitmq_server, namespace=namespace).delete_topology()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 server process (moto's server mode) on a free loopback port: host:port."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        unavailable("moto[server] (the S3 test server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket() -> str:
    return f"medal-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def ct_file() -> Path:
    from pydicom.data import get_testdata_file

    return Path(str(get_testdata_file("CT_small.dcm")))


@pytest.fixture
def distributed_env(
    postgres_url: str, rabbitmq_server: str, bus_namespace: str, s3_server: str, s3_bucket: str, tmp_path: Path
) -> dict[str, str]:
    """The environment of `medal serve|worker|migrate` processes over this test's own PostgreSQL database,
    RabbitMQ namespace and S3 bucket, with the API key and de-identification secret they refuse to start without."""
    from tests.e2e.helpers import SECURE_ENV

    return {
        **os.environ,
        **SECURE_ENV,
        "MEDAL_DATABASE_URL": postgres_url,
        "MEDAL_BROKER_URL": rabbitmq_server,
        "MEDAL_BUS_NAMESPACE": bus_namespace,
        "MEDAL_S3_ENDPOINT": s3_server,
        "MEDAL_S3_ACCESS_KEY": "testing",
        "MEDAL_S3_SECRET_KEY": "testing",
        "MEDAL_S3_BUCKET": s3_bucket,
        "MEDAL_DATA_DIR": str(tmp_path / "unused"),
        "MEDAL_LOG_LEVEL": "INFO",
    }
