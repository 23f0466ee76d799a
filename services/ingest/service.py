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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from sqlalchemy import func, select

from medal.db.engine import insert_ignore
from medal.db.schema import ingest as tables
from medal.db.schema.base import utcnow
from medal.platform import Platform
from medal.storage.base import StoredObject, sha256_hex
from medal.unit_of_work import UnitOfWork
from proto import ImageIngested
from services.ingest import uid_map
from services.ingest.deid import DeidentifiedInstance, DeidOptions, deidentify, encode_dataset
from services.ingest.parsing import RefusedInstance, read_dicom
from services.ingest.raster import RasterError, RasterFrame, Window, rasterise
from services.ingest.schemas import IngestSettings, InstanceResult, Outcome, Study
from services.ingest.triage import quarantine_reason

log = logging.getLogger("medal.ingest")
SOURCE = "ingest"
ID_NAMESPACE = uuid.UUID("6f1f3c4e-2a51-4f0b-9d7e-3b8f1d2c9a10")
MAX_PIXEL_BYTES = 1024**3
INSTANCES = Counter("medal_ingest_instances_total", "Instances by outcome", ["outcome"])
#: The columns of an image row that its ``ImageIngested`` event carries as they are.
EVENT_IMAGE_FIELDS = (
    "frame",
    "width",
    "height",
    "display_key",
    "display_sha256",
    "training_key",
    "training_sha256",
    "training_offset",
)


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
    return InstanceResult(index=index, outcome="refused", reason=refusal.message, code=refusal.code)


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


def compute(data: bytes, *, secret: bytes, project: str, settings: IngestSettings) -> Computed:
    """Read, triage, de-identify, encode and rasterise in one go (one hop to a worker thread).

    Duplicates are rasterised too before the database says they are duplicates: re-submission stays
    harmless, only slower, and the common path saves a thread hop.
    """
    try:
        prepared = prepare(data, secret=secret, project=project, options=settings.deid_options)
        return Computed(prepared, rasterise_prepared(prepared, settings.preset), None)
    except RefusedInstance as exc:
        return Computed(None, [], exc)


async def compute_in_thread(platform: Platform, project: str, data: bytes, settings: IngestSettings) -> Computed:
    secret = platform.settings.deid_secret.get_secret_value().encode()
    return await asyncio.to_thread(compute, data, secret=secret, project=project, settings=settings)


async def commit(
    platform: Platform,
    project: str,
    computed: Computed,
    *,
    index: int,
    correlation_id: uuid.UUID | None,
    seen: dict[str, str] | None,
    keep_originals: bool = False,
) -> InstanceResult:
    """The I/O part: duplicate and conflict checks, objects, rows and events (and, for projects that keep
    them, the original UIDs: a duplicate records them too, so re-sending fills the mapping)."""
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
    if existing is not None and existing != content_sha:
        conflict = RefusedInstance("conflict", "an instance with this SOP Instance UID but other content exists")
        return refused(index, conflict)
    outcome: Outcome
    if existing is not None:
        outcome, image_ids = "duplicate", await _image_ids(platform, instance_id)
        if keep_originals:
            async with platform.db.begin() as conn:
                await uid_map.remember(conn, project, deid)
    else:
        outcome, image_ids = await _store(
            platform, project, prepared, computed.frames, instance_id, correlation_id, keep_originals
        )
    INSTANCES.labels(outcome).inc()
    return InstanceResult(
        index=index,
        outcome=outcome,
        reason=prepared.quarantine if outcome == "quarantined" else None,
        instance_id=instance_id,
        image_ids=image_ids,
        sop_uid=deid.sop_uid,
        sop_class_uid=str(deid.dataset.SOPClassUID),
    )


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


def _image_row(instance_id: str, frame: RasterFrame, display: StoredObject, training: StoredObject) -> dict[str, Any]:
    spacing = frame.geometry.pixel_spacing
    return {
        "id": stable_id(instance_id, str(frame.frame)),
        "instance_id": instance_id,
        "frame": frame.frame,
        "width": frame.width,
        "height": frame.height,
        "display_key": display.key,
        "display_sha256": display.sha256,
        "training_key": training.key,
        "training_sha256": training.sha256,
        "training_offset": frame.training_offset,
        "pixel_spacing_row": spacing[0] if spacing else None,
        "pixel_spacing_col": spacing[1] if spacing else None,
        "pixel_spacing_source": frame.geometry.spacing_source,
        "orientation": _numbers(frame.geometry.orientation),
        "position": _numbers(frame.geometry.position),
        "window_center": frame.window.center if frame.window else None,
        "window_width": frame.window.width if frame.window else None,
    }


async def announce_images(
    uow: UnitOfWork,
    project: str,
    instance: Mapping[str, Any],
    images: Sequence[Mapping[str, Any]],
    *,
    released: bool = False,
) -> None:
    """One ``ImageIngested`` per image of ``instance`` (a mapping with id, study_id, series_id, modality,
    dicom_key and quarantined), under message ids derived from the image (and the release)."""
    for image in images:
        event = ImageIngested(
            project=project,
            image_id=uuid.UUID(image["id"]),
            study_id=uuid.UUID(instance["study_id"]),
            series_id=uuid.UUID(instance["series_id"]),
            instance_id=uuid.UUID(instance["id"]),
            modality=instance["modality"],
            dicom_key=instance["dicom_key"],
            quarantined=False if released else instance["quarantined"],
            **{name: image[name] for name in EVENT_IMAGE_FIELDS},
        )
        key = f"event/{image['id']}/released" if released else f"event/{image['id']}"
        await uow.emit(event, message_id=uuid.uuid5(ID_NAMESPACE, key))


async def _store(
    platform: Platform,
    project: str,
    prepared: Prepared,
    frames: list[RasterFrame],
    instance_id: str,
    correlation_id: uuid.UUID | None,
    keep_originals: bool,
) -> tuple[Outcome, list[str]]:
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
    images = [{**_image_row(instance_id, *stored), "created_at": now} for stored in stored_frames]
    instance = {
        "id": instance_id,
        "series_id": series_id,
        "sop_uid": deid.sop_uid,
        "dicom_key": dicom.key,
        "dicom_sha256": dicom.sha256,
        "frames": len(frames),
        "quarantined": quarantined,
        "quarantine_reason": prepared.quarantine,
        "created_at": now,
    }
    study = {
        "id": study_id,
        "project": project,
        "study_uid": deid.study_uid,
        "patient_pseudo_id": deid.patient_pseudo_id,
        "created_at": now,
    }
    series = {"id": series_id, "study_id": study_id, "series_uid": deid.series_uid, "modality": deid.modality}
    async with platform.unit_of_work(SOURCE, correlation_id=correlation_id) as uow:
        await insert_ignore(uow.conn, tables.studies, study, ["id"])
        await insert_ignore(uow.conn, tables.series, {**series, "created_at": now}, ["id"])
        if keep_originals:
            await uid_map.remember(uow.conn, project, deid)
        if not await insert_ignore(uow.conn, tables.instances, instance, ["id"]):
            return "duplicate", [image["id"] for image in images]  # a concurrent upload of it won the race
        if images:
            await uow.conn.execute(tables.images.insert(), images)
        await announce_images(uow, project, {**instance, "study_id": study_id, "modality": deid.modality}, images)
    return ("quarantined" if quarantined else "accepted"), [image["id"] for image in images]


async def list_studies(platform: Platform, project: str) -> list[Study]:
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
        Study(
            id=row.id,
            modalities=sorted(modalities.get(row.id, set())),
            series=row.series,
            instances=row.instances,
            images=row.images,
        )
        for row in rows
    ]
