"""Every route passes through one caller-identification dependency."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.settings import SERVICE_NAMES, Settings

KEY = "s3cret-test-key"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("guarded"), api_keys=[SecretStr(KEY)], auth_failures_burst=10_000
    )
    with serve_in_thread(build_app(settings, SERVICE_NAMES, consume=False, migrate=True)) as base:
        yield base


def service_routes(base: str) -> list[tuple[str, str, str]]:
    routes: list[tuple[str, str, str]] = []
    for service in SERVICE_NAMES:
        spec = httpx.get(f"{base}/{service}/openapi.json").json()
        for path, operations in spec["paths"].items():
            for method in operations:
                routes.append((service, method.upper(), path))
    return routes


def test_every_api_route_requires_a_key_when_keys_are_configured(guarded: str) -> None:
    routes = service_routes(guarded)
    checked = 0
    for service, method, path in routes:
        if path in ("/healthz", "/readyz", "/metrics", "/v1/auth/config") or path.startswith(
            "/monailabel/{project}/auth/"
        ):
            continue  # probes and scraping stay open, as Kubernetes needs; so does how to sign in (MONAI's too)
        url = guarded + f"/{service}" + path.replace("{project}", "p").replace("{image_id}", "0" * 36)
        response = httpx.request(method, url)
        assert response.status_code == 401, (method, url, response.status_code)
        assert method == "HEAD" or response.json()["error"]["code"] == "unauthenticated"  # HEAD has no body
        wrong = httpx.request(method, url, headers={"X-API-Key": "wrong"})
        assert wrong.status_code == 401
        checked += 1
    assert checked >= 8


def test_a_valid_key_is_accepted_by_header_or_bearer(guarded: str) -> None:
    assert httpx.get(f"{guarded}/annotation/v1/projects", headers={"X-API-Key": KEY}).status_code == 200
    bearer = httpx.get(f"{guarded}/annotation/v1/projects", headers={"Authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 200
    assert httpx.get(f"{guarded}/healthz").status_code == 200
