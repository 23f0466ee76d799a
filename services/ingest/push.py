"""Push a project's de-identified instances to an archive by STOW-RS (a research PACS, say).

Only what ingest stores is sent — the de-identified Part-10 objects — so the archive holds the same
UIDs that medal's SEG objects reference. The target URL passes the same allow-list as pulls. The
instances go in STOW-RS requests of up to ``BATCH`` parts, each body streamed from object storage
one instance at a time; the archive's answer (ReferencedSOPSequence / FailedSOPSequence) decides each
instance's outcome. A push is idempotent on the archive's side (a re-sent instance is stored again
or reported as a duplicate by it).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select

from medal.access import Caller, acting, audit
from medal.db.schema import ingest as tables
from medal.platform import Platform
from proto.types import Id
from services.ingest.errors import Invalid
from services.ingest.remote import Remote, RemoteError

BATCH = 16


class PushRequest(BaseModel):
    stow: str = Field(max_length=2000, description="Base URL of the archive's DICOMweb service (STOW-RS).")
    study_ids: list[Id] = Field(default_factory=list, max_length=1000, description="Only these studies (default all).")


class PushedInstance(BaseModel):
    instance_id: Id
    outcome: Literal["sent", "failed"]
    code: str | None = None
    reason: str | None = None


class PushResponse(BaseModel):
    project: str
    sent: int
    failed: int
    results: list[PushedInstance]


class TooManyToPush(Invalid, code="push-too-large"):
    """More instances than ``MEDAL_PUSH_MAX_INSTANCES``: push fewer studies at a time."""


async def _instances(platform: Platform, project: str, study_ids: list[str]) -> list[Any]:
    s, se, i = tables.studies, tables.series, tables.instances
    query = (
        select(i.c.id, i.c.sop_uid, i.c.dicom_key)
        .join(se, se.c.id == i.c.series_id)
        .join(s, s.c.id == se.c.study_id)
        .where(s.c.project == project)
        .order_by(s.c.id, se.c.id, i.c.id)
    )
    if study_ids:
        query = query.where(s.c.id.in_(study_ids))
    async with platform.db.connect() as conn:
        return list((await conn.execute(query)).all())


def _parse_answer(body: Any) -> tuple[set[str], dict[str, int]]:
    """(stored SOP UIDs, failed SOP UID → failure reason) of a STOW-RS answer."""
    stored: set[str] = set()
    failed: dict[str, int] = {}
    if isinstance(body, dict):
        for item in body.get("00081199", {}).get("Value", []) or []:
            stored.update(item.get("00081155", {}).get("Value", []) or [])
        for item in body.get("00081198", {}).get("Value", []) or []:
            for uid in item.get("00081155", {}).get("Value", []) or []:
                failed[uid] = int((item.get("00081197", {}).get("Value") or [0])[0])
    return stored, failed


async def push(platform: Platform, project: str, request: PushRequest, caller: Caller | None = None) -> PushResponse:
    rows = await _instances(platform, project, list(request.study_ids))
    if len(rows) > platform.settings.push_max_instances:
        raise TooManyToPush(f"{len(rows)} instances is over MEDAL_PUSH_MAX_INSTANCES; push fewer studies at a time")
    results: list[PushedInstance] = []
    async with Remote(platform.settings, request.stow) as remote:
        for start in range(0, len(rows), BATCH):
            results.extend(await _send_batch(platform, remote, rows[start : start + BATCH]))
    sent = sum(result.outcome == "sent" for result in results)
    details = {"studies": len(request.study_ids), "sent": sent, "failed": len(results) - sent}
    async with platform.db.begin() as conn:
        await audit.record(conn, acting(caller), "pushed", project, "project", project, details)
    return PushResponse(project=project, sent=sent, failed=len(results) - sent, results=results)


async def _send_batch(platform: Platform, remote: Remote, batch: list[Any]) -> list[PushedInstance]:
    boundary = uuid.uuid4().hex

    async def body() -> AsyncIterator[bytes]:
        for row in batch:
            data = await asyncio.to_thread(platform.store.get, row.dicom_key)
            yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    def failed(code: str, reason: str) -> list[PushedInstance]:
        return [PushedInstance(instance_id=row.id, outcome="failed", code=code, reason=reason) for row in batch]

    try:
        response = await remote.store(body(), boundary)
    except RemoteError as exc:
        return failed(exc.code, exc.message)
    if response.status_code not in (200, 202, 409):
        return failed("archive_refused", f"the archive answered HTTP {response.status_code}")
    try:
        stored, refused = _parse_answer(response.json())
    except ValueError:
        stored, refused = (set(), {}) if response.status_code != 200 else ({row.sop_uid for row in batch}, {})
    results = []
    for row in batch:
        if row.sop_uid in stored or (response.status_code == 200 and row.sop_uid not in refused):
            results.append(PushedInstance(instance_id=row.id, outcome="sent"))
        else:
            reason = refused.get(row.sop_uid)
            text = f"the archive refused it (failure reason 0x{reason:04X})" if reason else "the archive refused it"
            results.append(PushedInstance(instance_id=row.id, outcome="failed", code="archive_refused", reason=text))
    return results
