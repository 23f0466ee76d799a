"""Submissions: every upload is a job with one outcome per instance and a completion event.

A job row is written when the submission starts; each instance's outcome is recorded as it is
decided (position in the submission, never a file name); finishing the job stores the counts and
queues ``IngestJobCompleted`` in the same transaction. The job records who submitted it (the
authenticated caller). A client polls ``GET /ingest/v1/jobs/{id}``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable

from sqlalchemy import select

from medal.db.schema import ingest as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from proto import IngestJobCompleted
from services.ingest.errors import InstanceRefused, JobNotFound
from services.ingest.parsing import RefusedInstance
from services.ingest.schemas import IngestSettings, InstanceResult, Job, JobResponse
from services.ingest.service import ID_NAMESPACE, SOURCE, Computed, commit, compute_in_thread, refused
from services.ingest.settings import project_settings

RECORD_EVERY = 16
RECORD_SECONDS = 2.0


class Submission:
    """One job: ``add`` each instance (bytes or an early refusal), then ``finish``."""

    def __init__(self, platform: Platform, project: str, source: str, submitted_by: str) -> None:
        self.platform = platform
        self.project = project
        self.source = source
        self.submitted_by = submitted_by[:64]
        self.job_id = str(uuid.uuid4())
        self.results: list[InstanceResult] = []
        self.seen: dict[str, str] = {}
        self.settings: IngestSettings | None = None
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
                    submitted_by=self.submitted_by,
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

    async def add_known(self, instance_id: str) -> InstanceResult:
        """An instance the project holds already (found without receiving it again): a duplicate."""
        async with self.platform.db.connect() as conn:
            rows = await conn.execute(
                select(tables.images.c.id)
                .where(tables.images.c.instance_id == instance_id)
                .order_by(tables.images.c.frame)
            )
            image_ids = [row.id for row in rows]
        result = InstanceResult(
            index=len(self.results), outcome="duplicate", instance_id=instance_id, image_ids=image_ids
        )
        return await self._append_and_record(result)

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
    def _settings(self) -> IngestSettings:
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
                keep_originals=self._settings.keep_original_uids,
            )
        return await self._append_and_record(result)

    def _append(self, result: InstanceResult) -> InstanceResult:
        self.results.append(result)
        self._unrecorded.append(result)
        return result

    async def _append_and_record(self, result: InstanceResult) -> InstanceResult:
        self._append(result)
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

    async def finish(self) -> JobResponse:
        await self._record()
        counts = {
            "accepted": self.count("accepted"),
            "duplicates": self.count("duplicate"),
            "quarantined": self.count("quarantined"),
            "refused": self.count("refused"),
        }
        job_id = uuid.UUID(self.job_id)
        async with self.platform.unit_of_work(SOURCE, correlation_id=job_id) as uow:
            await uow.conn.execute(
                tables.jobs.update()
                .where(tables.jobs.c.id == self.job_id)
                .values(status="completed", total=len(self.results), completed_at=utcnow(), **counts)
            )
            event = IngestJobCompleted(project=self.project, job_id=job_id, **counts)
            await uow.emit(event, message_id=uuid.uuid5(ID_NAMESPACE, f"job/{self.job_id}"))
        return await get_job(self.platform, self.job_id)

    async def finish_one(self) -> JobResponse:
        """``finish`` a submission of one instance: raises :class:`InstanceRefused` if it was refused."""
        report = await self.finish()
        (result,) = report.results
        if result.outcome == "refused":
            details = [{"code": result.code, "job_id": self.job_id}]
            raise InstanceRefused(f"instance refused: {result.reason}", details=details)
        return report


async def job_project(platform: Platform, job_id: str) -> str | None:
    """The project of an ingest job (for ``require``); None when there is no such job."""
    async with platform.db.connect() as conn:
        name: str | None = await conn.scalar(select(tables.jobs.c.project).where(tables.jobs.c.id == job_id))
    return name


async def get_job(platform: Platform, job_id: str) -> JobResponse:
    """The job and every outcome recorded so far. Raises :class:`JobNotFound`."""
    async with platform.db.connect() as conn:
        job = (await conn.execute(select(tables.jobs).where(tables.jobs.c.id == job_id))).first()
        if job is None:
            raise JobNotFound("no such ingest job")
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
            index=item.position,
            outcome=item.outcome,
            code=item.code,
            reason=item.reason,
            instance_id=item.instance_id,
            image_ids=by_instance.get(item.instance_id, []) if item.instance_id else [],
        )
        for item in items
    ]
    completed = job.status == "completed"
    fields = {name: getattr(job, name) for name in Job.model_fields}
    summary = Job.model_validate(
        {**fields, "status": "completed" if completed else "running", "total": job.total if completed else len(results)}
    )
    return JobResponse(project=job.project, job=summary, results=results)
