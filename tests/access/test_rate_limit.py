"""Failed sign-ins are rate-limited per client address: 429 with Retry-After, then allowed again."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from medal.access.ratelimit import FailureLimiter
from medal.local_server import serve_in_thread
from tests.access.conftest import PLATFORM_KEY, access_settings, guarded_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_empties_with_failures_and_refills_with_time() -> None:
    clock = Clock()
    limiter = FailureLimiter(burst=3, per_minute=6, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") is None
        limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 10  # one token every 10 s
    assert limiter.retry_after("10.0.0.2") is None  # per address
    clock.now += 10
    assert limiter.retry_after("10.0.0.1") is None
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 10


def test_the_limiter_forgets_the_oldest_addresses_beyond_its_bound() -> None:
    limiter = FailureLimiter(burst=1, per_minute=1, clock=Clock(), max_tracked=2)
    for address in ("a", "b", "c"):
        limiter.failed(address)
    assert limiter.retry_after("a") is None and limiter.retry_after("c") is not None


def test_too_many_failed_sign_ins_answer_429_with_retry_after(tmp_path: Path) -> None:
    settings = access_settings(tmp_path, auth_failures_burst=3, auth_failures_per_minute=60)
    with serve_in_thread(guarded_app(settings)) as base:
        url = f"{base}/annotation/v1/me"
        for _ in range(5):  # asking without credentials is no guess and costs nothing
            assert httpx.get(url).status_code == 401
        for _ in range(3):
            assert httpx.get(url, headers={"X-API-Key": "guess"}).status_code == 401
        limited = httpx.get(url, headers={"X-API-Key": PLATFORM_KEY})
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) == 1
        assert "too many failed sign-ins" in limited.json()["error"]["message"]
        time.sleep(1.1)
        assert httpx.get(url, headers={"X-API-Key": PLATFORM_KEY}).status_code == 200
