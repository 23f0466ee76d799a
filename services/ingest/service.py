"""Ingest use cases: one DICOM instance in, de-identified objects, rows and events out."""

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
from proto import ImageIngested, envelope_for
from services.ingest.deid import DeidentifiedInstance, deidentify, encode_dataset
from services.ingest.parsing import RefusedInstance, read_dicom
from services.ingest.raster import RasterError, RasterFrame, rasterise

log = logging.getLogger("medal.ingest")
SOURCE = "ingest"
ID_NAMESPACE = uuid.UUID("6f1f3c4e-2a51-4f0b-9d7e-3b8f1d2c9a10")
MAX_PIXEL_BYTES = 1024**3
INSTANCES = Counter("medal_ingest_instances_total", "Instances by outcome", ["outcome"])

Outcome = Literal["accepted", "duplicate", "refused"]


@dataclass
class InstanceResult:
    index: int
    outcome: Outcome
    reason: str | None = None
    instance_id: str | None = None
    image_ids: list[str] = field(default_factory=list)


def stable_id(*parts: str) -> str:
    """Deterministic ids make every retried write land on the same row."""
    return str(uuid.uuid5(ID_NAMESPACE, "/".join(parts)))


async def ingest_instance(
    platform: Platform, project: str, data: bytes, *, index: int = 0, correlation_id: uuid.UUID | None = None
) -> InstanceResult:
    try:
        dataset = await asyncio.to_thread(read_dicom, data, max_pixel_bytes=MAX_PIXEL_BYTES)
        secret = platform.settings.deid_secret.get_secret_value().encode()
        deid = deidentify(dataset, secret=secret, project=project)
    except RefusedInstance as exc:
        INSTANCES.labels("refused").inc()
        return InstanceResult(index, "refused", str(exc))
    instance_id = stable_id(project, deid.sop_uid)
    if await _instance_exists(platform, deid.sop_uid):
        INSTANCES.labels("duplicate").inc()
        return InstanceResult(index, "duplicate", None, instance_id, await _image_ids(platform, instance_id))
    try:
        frames = await asyncio.to_thread(rasterise, dataset)
    except RasterError as exc:
        INSTANCES.labels("refused").inc()
        return InstanceResult(index, "refused", str(exc))
    result = await _store(platform, project, deid, frames, instance_id, correlation_id)
    result.index = index
    INSTANCES.labels(result.outcome).inc()
    platform.relay.notify()
    return result


async def _instance_exists(platform: Platform, sop_uid: str) -> bool:
    async with platform.db.connect() as conn:
        found = await conn.execute(select(tables.instances.c.id).where(tables.instances.c.sop_uid == sop_uid))
        return found.first() is not None


async def _image_ids(platform: Platform, instance_id: str) -> list[str]:
    async with platform.db.connect() as conn:
        rows = await conn.execute(
            select(tables.images.c.id).where(tables.images.c.instance_id == instance_id).order_by(tables.images.c.frame)
        )
        return [row.id for row in rows]


async def _store(
    platform: Platform,
    project: str,
    deid: DeidentifiedInstance,
    frames: list[RasterFrame],
    instance_id: str,
    correlation_id: uuid.UUID | None,
) -> InstanceResult:
    """Objects first (content-addressed, so retries are harmless), then rows and events in one commit."""
    store = platform.store
    dicom = await asyncio.to_thread(
        store.put_content, "dicom", encode_dataset(deid.dataset), "dcm", "application/dicom"
    )
    stored_frames = []
    for frame in frames:
        display = await asyncio.to_thread(store.put_content, "display", frame.display_png, "png", "image/png")
        training = await asyncio.to_thread(store.put_content, "training", frame.training_png, "png", "image/png")
        stored_frames.append((frame, display, training))

    now = utcnow()
    study_id = stable_id(project, deid.study_uid)
    series_id = stable_id(project, deid.series_uid)
    pixel_spacing = getattr(deid.dataset, "PixelSpacing", None)
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
                "quarantined": False,
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
                    pixel_spacing_row=float(pixel_spacing[0]) if pixel_spacing else None,
                    pixel_spacing_col=float(pixel_spacing[1]) if pixel_spacing else None,
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
            )
            message_id = uuid.uuid5(ID_NAMESPACE, f"event/{image_id}")
            await add_to_outbox(
                conn, envelope_for(event, source=SOURCE, correlation_id=correlation_id, message_id=message_id)
            )
    return InstanceResult(0, "accepted", None, instance_id, image_ids)


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
