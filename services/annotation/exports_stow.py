"""SEG export to a PACS by STOW-RS: each labelled image's newest mask as a DICOM SEG, sent to an archive.

``deidentified`` (the default) references the de-identified instances medal holds, for a research archive
that holds the de-identified studies too (ingest's push sends them). ``original`` (project admins, in
projects whose ingest keeps original UIDs) references the clinical PACS's own instances: ingest resolves
the pseudonyms over HTTP, the answer lives in this function's memory only (SEG objects built a batch at a
time, never written anywhere but to the archive), and the export is in the audit trail before anything
leaves. Each object gets an outcome: sent, failed (with the archive's reason; retried first when the
archive was down or busy) or skipped (why no SEG can be made).
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Literal
from urllib.parse import urlsplit

import pydicom
from pydantic import BaseModel, Field

from medal.access import Caller, Role, audit
from medal.domain_errors import DomainError
from medal.platform import Platform
from medal.storage import ObjectStore
from proto.types import Id
from services.annotation import exports, exports_medical
from services.annotation.exports import ExportItem
from services.annotation.ingest_client import IngestClient, OriginalRef
from services.annotation.settings import ProjectSettings
from services.annotation.stow import Archive, Outcome, Part, allowed_archive

Reference = Literal["deidentified", "original"]
MAX_OBJECTS = 10000


class OriginalUidsForAdmins(DomainError, code="original-uids-forbidden"):
    """Only a project admin may export SEG objects that reference the original instances."""

    status = 403


class TooManyObjects(DomainError, code="export-too-large"):
    def __init__(self, count: int) -> None:
        super().__init__(f"{count} labelled images is over {MAX_OBJECTS} per export: choose images with image_ids")


class StowRequest(BaseModel):
    url: str = Field(max_length=2000, description="Base URL of the archive's DICOMweb service (STOW-RS).")
    reference: Reference = Field(
        default="deidentified",
        description="deidentified: the SEG objects reference medal's de-identified instances (research archive). "
        "original: the clinical PACS's instances (project admins; the project must keep original UIDs).",
    )
    image_ids: list[Id] = Field(default_factory=list, max_length=MAX_OBJECTS, description="Only these (default all).")


class StowedObject(BaseModel):
    image_id: Id
    seg_sop_uid: str | None = Field(description="The SEG's own SOP Instance UID (a new object; None when skipped).")
    outcome: Literal["sent", "failed", "skipped"]
    code: str | None = None
    reason: str | None = None
    attempts: int = 0


class StowReport(BaseModel):
    project: str
    archive: str
    reference: Reference
    sent: int
    failed: int
    skipped: int
    results: list[StowedObject]


def may_export_originals(caller: Caller, project: str) -> bool:
    return caller.platform_admin or caller.role_in(project) == Role.PROJECT_ADMIN


def _sources(store: ObjectStore, items: list[ExportItem]) -> dict[str, pydicom.Dataset | str]:
    """Each item's de-identified source instance (read in a worker thread), or why there is none."""
    return {item.image_id: exports_medical.source_of(store, item) for item in items}


def _with_originals(source: pydicom.Dataset, original: OriginalRef) -> pydicom.Dataset:
    """A copy of the de-identified source under its original study, series and SOP Instance UIDs."""
    clinical = copy.deepcopy(source)
    clinical.StudyInstanceUID = original.study_uid
    clinical.SeriesInstanceUID = original.series_uid
    clinical.SOPInstanceUID = original.sop_uid
    return clinical


def _build(
    store: ObjectStore,
    settings: ProjectSettings,
    items: list[ExportItem],
    sources: dict[str, pydicom.Dataset | str],
    originals: dict[str, OriginalRef] | None,
    reference: Reference,
) -> list[exports_medical.SegObject | str]:
    built: list[exports_medical.SegObject | str] = []
    for item in items:
        source = sources[item.image_id]
        if isinstance(source, pydicom.Dataset) and originals is not None:
            known = originals.get(str(source.SOPInstanceUID))
            source = _with_originals(source, known) if known else "ingest holds no original UIDs for it"
        if isinstance(source, str):
            built.append(source)
            continue
        built.append(exports_medical.seg_object(store, settings, item, source=source, reference=reference))
    return built


async def _items(
    platform: Platform, project: str, image_ids: list[str]
) -> tuple[str, ProjectSettings, list[ExportItem]]:
    record, items = await exports.collect(platform, project)
    wanted = set(image_ids)
    labelled = [i for i in items if i.mask_key is not None and (not wanted or i.image_id in wanted)]
    if len(labelled) > MAX_OBJECTS:
        raise TooManyObjects(len(labelled))
    return record.name, record.settings, labelled


async def stow_export(
    platform: Platform, project: str, caller: Caller, body: StowRequest, ingest: IngestClient | None
) -> StowReport:
    """Build and send the SEG objects of ``project`` to ``body.url``; a report with every object's outcome."""
    settings = platform.settings
    base = allowed_archive(settings, body.url)
    original = body.reference == "original"
    if original and not may_export_originals(caller, project):
        raise OriginalUidsForAdmins("only a project admin may export SEG objects that reference original instances")
    name, project_settings, items = await _items(platform, project, [str(i) for i in body.image_ids])
    sources = await asyncio.to_thread(_sources, platform.store, items)
    originals: dict[str, OriginalRef] | None = None
    export_id = str(uuid.uuid4())
    if original:
        assert ingest is not None, "an original-UID export needs ingest"
        uids = [str(s.SOPInstanceUID) for s in sources.values() if isinstance(s, pydicom.Dataset)]
        originals = await ingest.original_uids(name, uids) if uids else {}
        async with platform.unit_of_work("annotation") as uow:  # recorded before anything leaves
            details = {"reference": "original", "objects": len(uids), "archive": _host(base)}
            await audit.record(uow.conn, caller, "seg-export-original", name, "export", export_id, details)
    results: list[StowedObject] = []
    async with Archive(settings, base) as archive:
        batch = settings.stow_batch_objects
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            built = await asyncio.to_thread(
                _build, platform.store, project_settings, chunk, sources, originals, body.reference
            )
            results.extend(await _send(archive, chunk, built))
            del built  # the objects referencing original instances never outlive their request
    report = StowReport(
        project=name,
        archive=base,
        reference=body.reference,
        sent=sum(r.outcome == "sent" for r in results),
        failed=sum(r.outcome == "failed" for r in results),
        skipped=sum(r.outcome == "skipped" for r in results),
        results=results,
    )
    async with platform.unit_of_work("annotation") as uow:
        details = {"reference": body.reference, "sent": report.sent, "failed": report.failed, "archive": _host(base)}
        await audit.record(uow.conn, caller, "seg-exported", name, "export", export_id, details)
    return report


def _host(url: str) -> str:
    return (urlsplit(url).netloc or "")[:120]


async def _send(
    archive: Archive, items: list[ExportItem], built: list[exports_medical.SegObject | str]
) -> list[StowedObject]:
    parts = [Part(seg.sop_uid, seg.data) for seg in built if not isinstance(seg, str)]
    outcomes: dict[str, Outcome] = {o.sop_uid: o for o in (await archive.store(parts) if parts else [])}
    results = []
    for item, seg in zip(items, built, strict=True):
        if isinstance(seg, str):
            results.append(StowedObject(image_id=item.image_id, seg_sop_uid=None, outcome="skipped", reason=seg))
            continue
        outcome = outcomes[seg.sop_uid]
        results.append(
            StowedObject(
                image_id=item.image_id,
                seg_sop_uid=seg.sop_uid,
                outcome="sent" if outcome.stored else "failed",
                code=outcome.code,
                reason=outcome.reason,
                attempts=outcome.attempts,
            )
        )
    return results
