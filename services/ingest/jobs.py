"""Submissions: every upload is a job with one outcome per instance and a completion event.

A job row is written when the submission starts; each instance's outcome is recorded as it is
decided (position in the submission, never a file name); finishing the job stores the counts and
queues ``IngestJobCompleted`` in the same transaction. A client polls ``GET /ingest/v1/jobs/{id}``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from medal.db.messaging import add_to_outbox
from medal.db.schema import ingest as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from proto import IngestJobCompleted, envelope_for
from services.ingest.parsing import RefusedInstance
from services.ingest.service import (
    ID_NAMESPACE,
    SOURCE,
    Computed,
    InstanceResult,
    commit,
    compute_in_thread,
    refused,
)
from services.ingest.settings import ProjectSettings, project_settings

RECORD_EVERY = 16
RECORD_SECONDS = 2.0


@dataclass
class JobSummary:
    id: str
    project: str
    source: str
    status: str
    total: int
    accepted: int
    duplicates: int
    quarantined: int
    refused: int
    created_at: datetime
    completed_at: datetime | None
    results: list[InstanceResult] = field(default_factory=list)


class Submission:
    """One job: ``add`` each instance (bytes or an early refusal), then ``finish``."""

    def __init__(self, platform: Platform, project: str, source: str) -> None:
        self.platform = platform
        self.project = project
        self.source = source
        self.job_id = str(uuid.uuid4())
        self.results: list[InstanceResult] = []
        self.seen: dict[str, str] = {}
        self.settings: ProjectSettings | None = None
        self._unrecorded: list[InstanceResult] = []
        self._recorded_at = time.monotonic()

    async def start(self) -> str:
        self.settings = await project_settings(self.platform, self.project)
        async with self.platform.db.begin() as conn:
            await conn.execute(
                tables.jobs.insert().values(
                    id=self.job_id,
                    project=self.project,
                    source=self.source,
                    status="running",
                    total=0,
                    accepted=0,
                    duplicates=0,
                    quarantined=0,
                    refused=0,
                    created_at=utcnow(),
                )
            )
        return self.job_id

    async def add(self, data: bytes | None, refusal: RefusedInstance | None = None) -> InstanceResult:
        computed = None if data is None else await compute_in_thread(self.platform, self.project, data, self._settings)
        return await self._commit(computed, refusal)

    async def add_all(self, items: Iterable[tuple[bytes | None, RefusedInstance | None]]) -> None:
        """Like ``add`` for each item, with the next item's CPU work running while this one is stored."""
        iterator = iter(items)
        ahead = self._start(next(iterator, None))
        while ahead is not None:
            future, refusal = ahead
            ahead = self._start(next(iterator, None))
            await self._commit(None if future is None else await future, refusal)

    def _start(
        self, item: tuple[bytes | None, RefusedInstance | None] | None
    ) -> tuple[asyncio.Future[Computed] | None, RefusedInstance | None] | None:
        if item is None:
            return None
        data, refusal = item
        if data is None:
            return None, refusal
        return asyncio.ensure_future(compute_in_thread(self.platform, self.project, data, self._settings)), refusal

    @property
    def _settings(self) -> ProjectSettings:
        if self.settings is None:
            raise RuntimeError("start() the submission first")
        return self.settings

    async def _commit(self, computed: Computed | None, refusal: RefusedInstance | None) -> InstanceResult:
        position = len(self.results)
        if computed is None:
            result = refused(position, refusal or RefusedInstance("empty", "empty part"))
        else:
            result = await commit(
                self.platform,
                self.project,
                computed,
                index=position,
                correlation_id=uuid.UUID(self.job_id),
                seen=self.seen,
            )
        self.results.append(result)
        self._unrecorded.append(result)
        if len(self._unrecorded) >= RECORD_EVERY or time.monotonic() - self._recorded_at > RECORD_SECONDS:
            await self._record()
        return result

    async def _record(self) -> None:
        """Write the outcomes decided since the last call (batched: pollers see progress within seconds)."""
        if not self._unrecorded:
            return
        rows = [
            {
                "job_id": self.job_id,
                "position": result.index,
                "outcome": result.outcome,
                "code": result.code,
                "reason": (result.reason or None) and str(result.reason)[:300],
                "instance_id": result.instance_id,
                "images": len(result.image_ids),
            }
            for result in self._unrecorded
        ]
        async with self.platform.db.begin() as conn:
            await conn.execute(tables.job_items.insert(), rows)
        self._unrecorded = []
        self._recorded_at = time.monotonic()

    def count(self, outcome: str) -> int:
        return sum(result.outcome == outcome for result in self.results)

    async def finish(self) -> JobSummary:
        await self._record()
        now = utcnow()
        counts = {
            "accepted": self.count("accepted"),
            "duplicates": self.count("duplicate"),
            "quarantined": self.count("quarantined"),
            "refused": self.count("refused"),
        }
        event = IngestJobCompleted(project=self.project, job_id=uuid.UUID(self.job_id), **counts)
        message_id = uuid.uuid5(ID_NAMESPACE, f"job/{self.job_id}")
        async with self.platform.db.begin() as conn:
            await conn.execute(
                tables.jobs.update()
                .where(tables.jobs.c.id == self.job_id)
                .values(status="completed", total=len(self.results), completed_at=now, **counts)
            )
            await add_to_outbox(
                conn,
                envelope_for(event, source=SOURCE, correlation_id=uuid.UUID(self.job_id), message_id=message_id),
            )
        self.platform.relay.notify()
        summary = await get_job(self.platform, self.job_id)
        if summary is None:
            raise RuntimeError("a finished job has no row")
        return summary


async def get_job(platform: Platform, job_id: str) -> JobSummary | None:
    async with platform.db.connect() as conn:
        job = (await conn.execute(select(tables.jobs).where(tables.jobs.c.id == job_id))).first()
        if job is None:
            return None
        items = (
            await conn.execute(
                select(tables.job_items)
                .where(tables.job_items.c.job_id == job_id)
                .order_by(tables.job_items.c.position)
            )
        ).all()
        images = tables.images
        instance_ids = [item.instance_id for item in items if item.instance_id]
        image_rows = (
            await conn.execute(
                select(images.c.instance_id, images.c.id)
                .where(images.c.instance_id.in_(instance_ids))
                .order_by(images.c.instance_id, images.c.frame)
            )
        ).all()
    by_instance: dict[str, list[str]] = {}
    for row in image_rows:
        by_instance.setdefault(row.instance_id, []).append(row.id)
    results = [
        InstanceResult(
            item.position,
            item.outcome,
            item.reason,
            item.instance_id,
            by_instance.get(item.instance_id, []) if item.instance_id else [],
            item.code,
        )
        for item in items
    ]
    return JobSummary(
        id=job.id,
        project=job.project,
        source=job.source,
        status=job.status,
        total=job.total if job.status == "completed" else len(results),
        accepted=job.accepted,
        duplicates=job.duplicates,
        quarantined=job.quarantined,
        refused=job.refused,
        created_at=job.created_at,
        completed_at=job.completed_at,
        results=results,
    )
