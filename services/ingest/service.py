"""Ingest use cases: one DICOM instance in, de-identified objects, rows and events out.

Order per instance: read and refuse (header only) → triage burned-in text → de-identify (table
driven) → encode → duplicate/conflict check → rasterise the de-identified dataset → objects under
content keys → one transaction with the rows and the ``ImageIngested`` events (outbox). Nothing is
stored for a refused instance. Submissions (jobs) are in :mod:`services.ingest.jobs`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import Counter
from sqlalchemy import func, select

from medal.db.engine import insert_ignore
from medal.db.messaging import add_to_outbox
from medal.db.schema import ingest as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from medal.storage.base import StoredObject, sha256_hex
from proto import ImageIngested, envelope_for
from services.ingest.deid import DeidentifiedInstance, DeidOptions, deidentify, encode_dataset
from services.ingest.parsing import RefusedInstance, read_dicom
from services.ingest.raster import RasterError, RasterFrame, Window, rasterise
from services.ingest.settings import ProjectSettings, project_settings
from services.ingest.triage import quarantine_reason

log = logging.getLogger("medal.ingest")
SOURCE = "ingest"
ID_NAMESPACE = uuid.UUID("6f1f3c4e-2a51-4f0b-9d7e-3b8f1d2c9a10")
MAX_PIXEL_BYTES = 1024**3
INSTANCES = Counter("medal_ingest_instances_total", "Instances by outcome", ["outcome"])

Outcome = Literal["accepted", "quarantined", "duplicate", "refused"]


@dataclass
class InstanceResult:
    index: int
    outcome: Outcome
    reason: str | None = None
    instance_id: str | None = None
    image_ids: list[str] = field(default_factory=list)
    code: str | None = None
    sop_uid: str | None = None  # the de-identified SOP Instance UID (STOW-RS answers)
    sop_class_uid: str | None = None


@dataclass(frozen=True)
class Prepared:
    deid: DeidentifiedInstance
    dicom_bytes: bytes
    quarantine: str | None


def stable_id(*parts: str) -> str:
    """Deterministic ids make every retried write land on the same row."""
    return str(uuid.uuid5(ID_NAMESPACE, "/".join(parts)))


def refused(index: int, refusal: RefusedInstance) -> InstanceResult:
    INSTANCES.labels("refused").inc()
    return InstanceResult(index, "refused", refusal.message, code=refusal.code)


def prepare(data: bytes, *, secret: bytes, project: str, options: DeidOptions) -> Prepared:
    """Read, triage, de-identify and encode (CPU only). Raises RefusedInstance."""
    dataset = read_dicom(data, max_pixel_bytes=MAX_PIXEL_BYTES)
    reason = quarantine_reason(dataset)
    try:
        deid = deidentify(dataset, secret=secret, project=project, options=options)
        encoded = encode_dataset(deid.dataset)
    except Exception as exc:  # pydicom raises many types for values it cannot re-encode
        raise RefusedInstance(
            "unwritable", f"the de-identified dataset cannot be written ({type(exc).__name__})"
        ) from None
    return Prepared(deid, encoded, reason)


def rasterise_prepared(prepared: Prepared, preset: Window | None) -> list[RasterFrame]:
    try:
        return rasterise(prepared.deid.dataset, preset=preset)
    except RasterError as exc:
        raise RefusedInstance("raster_failed", str(exc)) from None


@dataclass(frozen=True)
class Computed:
    """The CPU part of one instance: its de-identified encoding and frames, or why it was refused."""

    prepared: Prepared | None
    frames: list[RasterFrame]
    refusal: RefusedInstance | None


def compute(data: bytes, *, secret: bytes, project: str, settings: ProjectSettings) -> Computed:
    """Read, triage, de-identify, encode and rasterise in one go (one hop to a worker thread).

    Duplicates are rasterised too before the database says they are duplicates: re-submission stays
    harmless, only slower, and the common path saves a thread hop.
    """
    try:
        prepared = prepare(data, secret=secret, project=project, options=settings.deid_options)
        return Computed(prepared, rasterise_prepared(prepared, settings.preset), None)
    except RefusedInstance as exc:
        return Computed(None, [], exc)


async def compute_in_thread(platform: Platform, project: str, data: bytes, settings: ProjectSettings) -> Computed:
    secret = platform.settings.deid_secret.get_secret_value().encode()
    return await asyncio.to_thread(compute, data, secret=secret, project=project, settings=settings)


async def ingest_instance(
    platform: Platform,
    project: str,
    data: bytes,
    *,
    index: int = 0,
    correlation_id: uuid.UUID | None = None,
    settings: ProjectSettings | None = None,
    seen: dict[str, str] | None = None,
) -> InstanceResult:
    """One instance; ``seen`` maps the pseudonymous SOP UIDs of this submission to their content hash."""
    settings = settings or await project_settings(platform, project)
    computed = await compute_in_thread(platform, project, data, settings)
    return await commit(platform, project, computed, index=index, correlation_id=correlation_id, seen=seen)


async def commit(
    platform: Platform,
    project: str,
    computed: Computed,
    *,
    index: int,
    correlation_id: uuid.UUID | None,
    seen: dict[str, str] | None,
) -> InstanceResult:
    """The I/O part: duplicate and conflict checks, objects, rows and events."""
    if computed.prepared is None:
        return refused(index, computed.refusal or RefusedInstance("unreadable", "no result"))
    prepared = computed.prepared
    deid = prepared.deid
    content_sha = sha256_hex(prepared.dicom_bytes)
    if seen is not None and seen.setdefault(deid.sop_uid, content_sha) != content_sha:
        twice = RefusedInstance("duplicate_in_upload", "two different files carry the same SOP Instance UID")
        return refused(index, twice)
    instance_id = stable_id(project, deid.sop_uid)
    existing = await _existing_sha(platform, deid.sop_uid)
    if existing is not None:
        if existing != content_sha:
            return refused(
                index, RefusedInstance("conflict", "an instance with this SOP Instance UID but other content exists")
            )
        INSTANCES.labels("duplicate").inc()
        image_ids = await _image_ids(platform, instance_id)
        sop_class = str(deid.dataset.SOPClassUID)
        return InstanceResult(
            index, "duplicate", None, instance_id, image_ids, sop_uid=deid.sop_uid, sop_class_uid=sop_class
        )
    result = await _store(platform, project, prepared, computed.frames, instance_id, correlation_id)
    result.index = index
    result.sop_uid = deid.sop_uid
    result.sop_class_uid = str(deid.dataset.SOPClassUID)
    INSTANCES.labels(result.outcome).inc()
    platform.relay.notify()
    return result


async def _existing_sha(platform: Platform, sop_uid: str) -> str | None:
    async with platform.db.connect() as conn:
        found = await conn.execute(select(tables.instances.c.dicom_sha256).where(tables.instances.c.sop_uid == sop_uid))
        row = found.first()
        return None if row is None else str(row.dicom_sha256)


async def _image_ids(platform: Platform, instance_id: str) -> list[str]:
    async with platform.db.connect() as conn:
        rows = await conn.execute(
            select(tables.images.c.id).where(tables.images.c.instance_id == instance_id).order_by(tables.images.c.frame)
        )
        return [row.id for row in rows]


def _numbers(values: tuple[float, ...] | None) -> str | None:
    return None if values is None else "\\".join(f"{v:g}" for v in values)[:200]


async def _store(
    platform: Platform,
    project: str,
    prepared: Prepared,
    frames: list[RasterFrame],
    instance_id: str,
    correlation_id: uuid.UUID | None,
) -> InstanceResult:
    """Objects first (content-addressed, so retries are harmless), then rows and events in one commit."""
    store = platform.store
    deid = prepared.deid
    quarantined = prepared.quarantine is not None

    def put_objects() -> tuple[StoredObject, list[tuple[RasterFrame, StoredObject, StoredObject]]]:
        dicom = store.put_content("dicom", prepared.dicom_bytes, "dcm", "application/dicom")
        pngs = [
            (
                frame,
                store.put_content("display", frame.display_png, "png", "image/png"),
                store.put_content("training", frame.training_png, "png", "image/png"),
            )
            for frame in frames
        ]
        return dicom, pngs

    dicom, stored_frames = await asyncio.to_thread(put_objects)  # one hop to a worker thread for all objects

    now = utcnow()
    study_id = stable_id(project, deid.study_uid)
    series_id = stable_id(project, deid.series_uid)
    async with platform.db.begin() as conn:
        await insert_ignore(
            conn,
            tables.studies,
            {
                "id": study_id,
                "project": project,
                "study_uid": deid.study_uid,
                "patient_pseudo_id": deid.patient_pseudo_id,
                "created_at": now,
            },
            ["id"],
        )
        await insert_ignore(
            conn,
            tables.series,
            {
                "id": series_id,
                "study_id": study_id,
                "series_uid": deid.series_uid,
                "modality": deid.modality,
                "created_at": now,
            },
            ["id"],
        )
        created = await insert_ignore(
            conn,
            tables.instances,
            {
                "id": instance_id,
                "series_id": series_id,
                "sop_uid": deid.sop_uid,
                "dicom_key": dicom.key,
                "dicom_sha256": dicom.sha256,
                "frames": len(frames),
                "quarantined": quarantined,
                "quarantine_reason": prepared.quarantine,
                "created_at": now,
            },
            ["id"],
        )
        if not created:  # a concurrent upload of the same instance won the race
            image_ids = [stable_id(instance_id, str(frame.frame)) for frame in frames]
            return InstanceResult(0, "duplicate", None, instance_id, image_ids)
        image_ids = []
        for frame, display, training in stored_frames:
            image_id = stable_id(instance_id, str(frame.frame))
            image_ids.append(image_id)
            spacing = frame.geometry.pixel_spacing
            await conn.execute(
                tables.images.insert().values(
                    id=image_id,
                    instance_id=instance_id,
                    frame=frame.frame,
                    width=frame.width,
                    height=frame.height,
                    display_key=display.key,
                    display_sha256=display.sha256,
                    training_key=training.key,
                    training_sha256=training.sha256,
                    training_offset=frame.training_offset,
                    pixel_spacing_row=spacing[0] if spacing else None,
                    pixel_spacing_col=spacing[1] if spacing else None,
                    pixel_spacing_source=frame.geometry.spacing_source,
                    orientation=_numbers(frame.geometry.orientation),
                    position=_numbers(frame.geometry.position),
                    window_center=frame.window.center if frame.window else None,
                    window_width=frame.window.width if frame.window else None,
                    created_at=now,
                )
            )
            event = ImageIngested(
                project=project,
                image_id=uuid.UUID(image_id),
                study_id=uuid.UUID(study_id),
                series_id=uuid.UUID(series_id),
                instance_id=uuid.UUID(instance_id),
                frame=frame.frame,
                modality=deid.modality,
                width=frame.width,
                height=frame.height,
                display_key=display.key,
                display_sha256=display.sha256,
                training_key=training.key,
                training_sha256=training.sha256,
                training_offset=frame.training_offset,
                dicom_key=dicom.key,
                quarantined=quarantined,
            )
            message_id = uuid.uuid5(ID_NAMESPACE, f"event/{image_id}")
            await add_to_outbox(
                conn, envelope_for(event, source=SOURCE, correlation_id=correlation_id, message_id=message_id)
            )
    outcome: Outcome = "quarantined" if quarantined else "accepted"
    return InstanceResult(0, outcome, prepared.quarantine, instance_id, image_ids)


@dataclass(frozen=True)
class StudySummary:
    id: str
    modalities: list[str]
    series: int
    instances: int
    images: int


async def list_studies(platform: Platform, project: str) -> list[StudySummary]:
    s, se, i, im = tables.studies, tables.series, tables.instances, tables.images
    query = (
        select(
            s.c.id,
            func.count(func.distinct(se.c.id)).label("series"),
            func.count(func.distinct(i.c.id)).label("instances"),
            func.count(func.distinct(im.c.id)).label("images"),
        )
        .select_from(
            s.outerjoin(se, se.c.study_id == s.c.id)
            .outerjoin(i, i.c.series_id == se.c.id)
            .outerjoin(im, im.c.instance_id == i.c.id)
        )
        .where(s.c.project == project)
        .group_by(s.c.id)
        .order_by(s.c.id)
    )
    async with platform.db.connect() as conn:
        rows = (await conn.execute(query)).all()
        pairs = await conn.execute(
            select(se.c.study_id, se.c.modality).join(s, s.c.id == se.c.study_id).where(s.c.project == project)
        )
        modalities: dict[str, set[str]] = {}
        for pair in pairs:
            modalities.setdefault(pair.study_id, set()).add(pair.modality)
    return [
        StudySummary(row.id, sorted(modalities.get(row.id, set())), row.series, row.instances, row.images)
        for row in rows
    ]
