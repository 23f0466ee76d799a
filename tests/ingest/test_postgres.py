"""The ingest use cases on PostgreSQL: a job with accepted, duplicate, quarantined and refused
instances, job items in batches, settings upsert and quarantine release."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from medal.db.migrate import upgrade
from medal.db.schema import ingest as tables
from medal.db.schema.messaging import outbox
from medal.platform import Platform
from medal.settings import Settings
from services.ingest.jobs import Submission, get_job
from services.ingest.parsing import RefusedInstance
from services.ingest.quarantine import list_quarantined, release_instance
from services.ingest.schemas import IngestSettings
from services.ingest.settings import project_settings, save_project_settings
from tests.ingest.conftest import ct_dataset, encode

pytestmark = pytest.mark.integration


@pytest.fixture
async def pg_platform(postgres_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    settings = Settings(data_dir=tmp_path, database_url=postgres_url, api_keys=[])
    await asyncio.to_thread(upgrade, postgres_url)
    built = Platform.build(settings, ["ingest"])
    try:
        yield built
    finally:
        built.bus.close()
        await built.db.dispose()


def variant(number: int, **attributes: object) -> bytes:
    ds = ct_dataset()
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.996.{number}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return encode(ds)


async def test_jobs_quarantine_and_settings_on_postgresql(pg_platform: Platform) -> None:
    chosen = IngestSettings(date_policy="shift", window_center=50, window_width=350)
    first = IngestSettings(date_policy="remove", window_center=40, window_width=400)
    await save_project_settings(pg_platform, "pg", first, "local")
    await save_project_settings(pg_platform, "pg", chosen, "local")
    assert await project_settings(pg_platform, "pg") == chosen

    submission = Submission(pg_platform, "pg", "upload", "key-uploader")
    await submission.start()
    items: list[tuple[bytes | None, RefusedInstance | None]] = [
        (variant(1), None),
        (variant(1), None),
        (variant(2, Modality="US"), None),
        (b"not dicom", None),
        (None, RefusedInstance("nested_archive", "archives inside archives are refused")),
        *[(variant(10 + n), None) for n in range(20)],
    ]
    await submission.add_all(items)
    job = (await submission.finish()).job
    assert (job.accepted, job.duplicates, job.quarantined, job.refused, job.total) == (21, 1, 1, 2, 25)
    polled = await get_job(pg_platform, job.id)
    assert polled.job.submitted_by == "key-uploader"
    assert [r.outcome for r in polled.results[:5]] == [
        "accepted",
        "duplicate",
        "quarantined",
        "refused",
        "refused",
    ]
    async with pg_platform.db.connect() as conn:
        windows = (await conn.execute(select(tables.images.c.window_center).distinct())).scalars().all()
        events = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    assert windows == [50.0]
    assert events == 22 + 1  # one image.ingested per stored frame, one ingest-job.completed

    (waiting,) = await list_quarantined(pg_platform, "pg")
    released = await release_instance(pg_platform, "pg", waiting.instance_id, "key-reviewer")
    assert (released.released_images, released.released_by) == (1, "key-reviewer")
    assert await list_quarantined(pg_platform, "pg") == []
    again = await release_instance(pg_platform, "pg", waiting.instance_id, "key-other")
    assert (again.released_images, again.released_by) == (0, "key-reviewer")  # the first release stands
    async with pg_platform.db.connect() as conn:
        released_by = await conn.scalar(
            select(tables.instances.c.released_by).where(tables.instances.c.id == waiting.instance_id)
        )
    assert released_by == "key-reviewer"
