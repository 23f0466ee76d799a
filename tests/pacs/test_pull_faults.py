"""A PACS that errors, stalls or cuts an answer mid-pull: each instance is retried or refused, none stored half."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from medal.db.migrate import upgrade
from medal.platform import Platform
from medal.settings import Settings
from services.ingest.jobs import Submission, get_job
from services.ingest.pull import PullRequest, run_pull
from tests.pacs.conftest import instance
from tests.pacs.orthanc import Orthanc

STUDY = "1.2.826.0.1.3680043.10.998.40"


class FaultyPacs(httpx.AsyncBaseTransport):
    """Orthanc behind faults: the first retrieve of instance 1 fails (503), instance 2 always answers 500,
    instance 3's body is cut short, instance 4 stalls past the timeout; instance 5 is fine."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.calls: dict[str, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        last = path.rsplit("/", 1)[-1]
        if "/instances/" in path:
            self.calls[last] = self.calls.get(last, 0) + 1
            if last.endswith(".1") and self.calls[last] == 1:
                return httpx.Response(503)
            if last.endswith(".2"):
                return httpx.Response(500)
            if last.endswith(".4"):
                await asyncio.sleep(0.2)
                raise httpx.ReadTimeout("stalled", request=request)  # what httpx raises past its timeout
        response = await self.inner.handle_async_request(request)
        if "/instances/" in path and last.endswith(".3"):
            body = await response.aread()
            headers = {"content-type": response.headers["content-type"]}
            return httpx.Response(200, headers=headers, content=body[: len(body) // 2])
        return response


@pytest.fixture
async def platform(tmp_path: Path, orthanc: Orthanc) -> Platform:
    settings = Settings(
        data_dir=tmp_path, dicomweb_allowed_urls=[orthanc.dicomweb], dicomweb_timeout_seconds=1, dicomweb_retries=2
    )
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    return Platform.build(settings, ["ingest"])


async def test_faults_are_per_instance(orthanc: Orthanc, platform: Platform) -> None:
    for number in range(1, 6):
        await asyncio.to_thread(orthanc.upload, instance(40, 1, number))
    transport = FaultyPacs()
    submission = Submission(platform, "faults", "pull", "local")
    await submission.start()
    await run_pull(platform, submission, PullRequest(dicomweb=orthanc.dicomweb, studies=[STUDY]), transport=transport)
    report = await get_job(platform, submission.job_id)
    outcomes = [(r.outcome, r.code) for r in report.results]
    assert sorted(outcomes, key=str) == sorted(
        [
            ("accepted", None),
            ("refused", "pacs_error"),
            ("refused", "incomplete"),
            ("refused", "pacs_timeout"),
            ("accepted", None),
        ],
        key=str,
    )
    assert report.job.accepted == 2 and report.job.refused == 3
    assert transport.calls[f"{STUDY}.1.1"] == 2  # retried once after the 503
    assert transport.calls[f"{STUDY}.1.2"] == 2  # retried, then refused
    down = Submission(platform, "faults", "pull", "local")
    await down.start()
    dead = Settings(data_dir=platform.settings.data_dir, dicomweb_allowed_urls=["http://127.0.0.1:9"])
    offline = Platform(settings=dead, db=platform.db, store=platform.store, bus=platform.bus, relay=platform.relay)
    await run_pull(offline, down, PullRequest(dicomweb="http://127.0.0.1:9/dicom-web", studies=[STUDY]))
    (result,) = (await get_job(platform, down.job_id)).results
    assert (result.outcome, result.code) == ("refused", "pacs_unreachable")
    platform.bus.close()
    await platform.db.dispose()
