"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def wait_for(probe: Callable[[], Any], seconds: float = 30.0, interval: float = 0.1) -> Any:
    """Call ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {seconds} s (last: {value!r})")
        time.sleep(interval)


def image_page(client: httpx.Client, base: str, project: str) -> dict[str, Any]:
    response = client.get(f"{base}/annotation/v1/projects/{project}/images")
    if response.status_code == 404:
        return {"total": 0, "images": []}
    response.raise_for_status()
    page: dict[str, Any] = response.json()
    return page


#: `medal serve` and `medal worker` refuse to start open or with the default de-identification secret.
E2E_KEY = "e2e-platform-admin-key"
SECURE_ENV = {"MEDAL_API_KEYS": E2E_KEY, "MEDAL_DEID_SECRET": "e2e-deid-secret-of-32-characters"}
AUTH_HEADERS = {"X-API-Key": E2E_KEY}
