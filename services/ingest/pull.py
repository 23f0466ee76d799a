"""DICOMweb pull: studies found with QIDO-RS on a remote PACS, retrieved with WADO-RS, ingested as one job.

``start_pull`` checks the request (the URL against the allow-list), records the job and runs the
pull as a background task of the process (stopped with it: the job then completes with what was
done, and a re-run resumes). Each instance is retrieved and ingested on its own — never a whole
study in memory — through the same de-identification and outcomes as every upload. Idempotent
and resumable without storing source UIDs: a source SOP Instance UID's pseudonym is a keyed hash
(:func:`deid.pseudonymous_uid`), so an instance whose pseudonym ingest already holds is reported as
a duplicate without being downloaded again. Limits: ``MEDAL_PULL_MAX_INSTANCES`` and
``MEDAL_PULL_MAX_BYTES`` per pull, ``MEDAL_MAX_UPLOAD_BYTES`` per instance; instances over a limit
are refused, not stored half.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import httpx
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from medal.db.schema import ingest as tables
from medal.platform import Platform
from services.ingest.deid import pseudonymous_uid
from services.ingest.jobs import Submission
from services.ingest.parsing import RefusedInstance
from services.ingest.remote import Remote, RemoteError, SourceInstance, allowed_base

log = logging.getLogger("medal.ingest.pull")
UID = r"^[0-9]+(\.[0-9]+)*$"
QUERY_KEY = r"^([A-Za-z]{2,64}|[0-9A-Fa-f]{8})$"
MAX_STUDIES = 1000


class PullRequest(BaseModel):
    """What to pull: named studies, or a QIDO-RS study query. The URL must be in the allow-list."""

    dicomweb: str = Field(max_length=2000, description="Base URL of the remote DICOMweb service.")
    studies: list[str] = Field(
        default_factory=list, max_length=MAX_STUDIES, description="Study Instance UIDs at the source."
    )
    query: dict[str, str] = Field(
        default_factory=dict,
        max_length=20,
        description="QIDO-RS study query, e.g. {ModalitiesInStudy: CT, StudyDate: 20240101-20240131}.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> PullRequest:
        import re

        if bool(self.studies) == bool(self.query):
            raise ValueError("give either studies or query")
        if any(not re.match(UID, uid) or len(uid) > 64 for uid in self.studies):
            raise ValueError("studies must be DICOM UIDs")
        for key, value in self.query.items():
            if not re.match(QUERY_KEY, key) or len(value) > 200 or any(c in value for c in "\r\n\x00"):
                raise ValueError("query keys are attribute keywords or tags, values short plain text")
        return self


class PullStarted(BaseModel):
    project: str
    job_id: str
    status: str = "running"


async def start_pull(platform: Platform, project: str, request: PullRequest, caller_id: str) -> PullStarted:
    """Check the request and start the pull job; poll ``GET /ingest/v1/jobs/{job_id}``."""
    allowed_base(platform.settings, request.dicomweb)
    submission = Submission(platform, project, "pull", caller_id)
    await submission.start()

    async def task(stop: asyncio.Event) -> None:
        await run_pull(platform, submission, request, stop=stop)

    platform.start_background([task])
    return PullStarted(project=project, job_id=submission.job_id)


async def run_pull(
    platform: Platform,
    submission: Submission,
    request: PullRequest,
    *,
    stop: asyncio.Event | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """The pull itself (``transport``: tests put a faulty PACS in between). Finishes the job always."""
    try:
        async with Remote(platform.settings, request.dicomweb, transport=transport) as remote:
            await _pull(platform, submission, remote, request, stop or asyncio.Event())
    except Exception:
        log.exception("pull job %s failed", submission.job_id)  # the message and trace quote no UID
        await submission.add(None, RefusedInstance("pull_failed", "the pull stopped on an internal error"))
    finally:
        await submission.finish()


async def _pull(
    platform: Platform, submission: Submission, remote: Remote, request: PullRequest, stop: asyncio.Event
) -> None:
    settings = platform.settings
    studies = list(request.studies)
    if request.query:
        try:
            studies = await remote.find_studies(request.query, MAX_STUDIES)
        except RemoteError as exc:
            await submission.add(None, exc.refusal())
            return
    budget_instances, budget_bytes = settings.pull_max_instances, settings.pull_max_bytes
    for number, study_uid in enumerate(studies, start=1):
        try:
            listed = await remote.study_instances(study_uid)
        except RemoteError as exc:
            await submission.add(None, RefusedInstance(exc.code, f"study {number}: {exc.message}"))
            continue
        if not listed:
            await submission.add(None, RefusedInstance("not_at_source", f"study {number}: no instances at the source"))
        held = await _already_held(platform, submission.project, listed)
        for item in listed:
            if stop.is_set():
                return
            if item.sop_uid in held:
                await submission.add_known(held[item.sop_uid])
                continue
            if budget_instances <= 0:
                await submission.add(None, RefusedInstance("pull_limit", "over MEDAL_PULL_MAX_INSTANCES for one pull"))
                continue
            limit = min(settings.max_upload_bytes, budget_bytes)
            try:
                data = await remote.retrieve(item, limit)
            except RemoteError as exc:
                code = "pull_limit" if exc.code == "too_large" and limit < settings.max_upload_bytes else exc.code
                await submission.add(None, RefusedInstance(code, f"study {number}: {exc.message}"))
                continue
            budget_instances, budget_bytes = budget_instances - 1, budget_bytes - len(data)
            await submission.add(data)


async def _already_held(platform: Platform, project: str, listed: list[SourceInstance]) -> Mapping[str, str]:
    """Source SOP UID → ingest instance id, for the instances this project holds already."""
    secret = platform.settings.deid_secret.get_secret_value().encode()
    pseudonyms = {pseudonymous_uid(secret, project, item.sop_uid): item.sop_uid for item in listed}
    found: dict[str, str] = {}
    names = list(pseudonyms)
    async with platform.db.connect() as conn:
        for start in range(0, len(names), 500):
            rows = await conn.execute(
                select(tables.instances.c.sop_uid, tables.instances.c.id).where(
                    tables.instances.c.sop_uid.in_(names[start : start + 500])
                )
            )
            found.update({pseudonyms[row.sop_uid]: row.id for row in rows})
    return found
