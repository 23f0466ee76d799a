"""MONAI Label's view of a medal project: info, next sample, datastore, labels, training state.

3D Slicer's and OHIF's MONAI Label plugins speak the MONAI Label server API; these use cases map it
onto medal's own: the next sample is a leased task, a label saved with tag ``final`` is the task's
submitted mask (or a new mask version when the caller holds no lease), training is the round
closing. Routes live in :mod:`services.annotation.monailabel_api`.
"""

from __future__ import annotations

import gzip
import io
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select

from medal.db.schema import annotation as tables
from medal.platform import Platform
from services.annotation import labelling, mask_codec, projects, retries, rounds, tasks
from services.annotation.errors import (
    ImageNotFound,
    InvalidMask,
    LabelNotFound,
    LeaseExpired,
    MaskNotFound,
    NoOpenRound,
    UnsupportedLabel,
)
from services.annotation.mask_codec import Mask
from services.annotation.records import ModelVersion, Round

MODEL_NAME = "medal"
FINAL_TAG = "final"
#: MONAI Label's time stamps (``start_ts``/``end_ts`` of a task).
TIMESTAMP = "%Y-%m-%d %H:%M:%S"


async def info(platform: Platform, project_name: str) -> dict[str, Any]:
    """``GET /info/``: labels, the one model, the project's strategy, datastore counts."""
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        images = (
            await conn.execute(
                select(func.count()).select_from(tables.images).where(tables.images.c.project_id == project.id)
            )
        ).scalar_one()
        labelled = await rounds.labels_count(conn, project.id)
    settings = project.settings
    labels = {c.name: index + 1 for index, c in enumerate(settings.classes)}
    models = await labelling.list_models(platform, project_name)
    current = next((m for m in models if m.current), None)
    return {
        "name": f"medal: {project.name}",
        "description": "medal active-learning project (MONAI Label compatible API)",
        "version": "0.1.0",
        "labels": list(labels),
        "label_colors": {c.name: c.colour for c in settings.classes},
        "models": {
            MODEL_NAME: {
                "type": "segmentation",
                "dimension": 2,
                "labels": labels,
                "description": "Committee of FCNs trained on the project's labels (suggestive annotation)",
                "version": current.version if current else None,
                "validation_dice": current.validation_dice if current else None,
            }
        },
        "trainers": {MODEL_NAME: {"description": "Close the open round and train the committee on all labels"}},
        "strategies": {settings.strategy: {"description": f"The next task of the rounds ({settings.strategy})"}},
        "scoring": {},
        "train_stats": {MODEL_NAME: {"total_models": len(models), "labels": labelled}},
        "datastore": {"total": images, "completed": labelled},
    }


def check_image_id(image_id: str) -> None:
    """MONAI Label answers 404 for an image it does not know, whatever the id looks like."""
    try:
        uuid.UUID(image_id)
    except ValueError:
        raise ImageNotFound(image_id[:64]) from None


async def strategy_of(platform: Platform, project_name: str) -> str:
    async with platform.db.connect() as conn:
        return (await projects.load_project(conn, project_name)).settings.strategy


async def next_sample(platform: Platform, project_name: str, caller_id: str) -> dict[str, Any]:
    """``POST /activelearning/{strategy}``: lease the next task to the caller; a status when there is none."""
    answer = await labelling.lease(platform, project_name, caller_id)
    leased, state = answer.task, answer.status
    if leased is None:
        return {"status": state} | ({"reason": answer.failure.reason} if answer.failure else {})
    return {
        "id": leased.image_id,
        "name": f"{leased.image_id}.png",
        "status": state,
        "task_id": leased.task_id,
        "round": leased.round_number,
        "width": leased.width,
        "height": leased.height,
        "lease_expires_at": leased.lease_expires_at.isoformat(),
    }


async def datastore(platform: Platform, project_name: str, output: str) -> Any:
    """``GET /datastore/``: ``stats`` (default), ``ids`` or ``all`` (every image with its label tags)."""
    i, m = tables.images, tables.masks
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        images = (await conn.execute(select(i).where(i.c.project_id == project.id).order_by(i.c.created_at))).all()
        masks = (
            await conn.execute(
                select(m.c.image_id, func.max(m.c.version).label("version"))
                .where(m.c.project_id == project.id)
                .group_by(m.c.image_id)
            )
        ).all()
        human = await rounds.human_masks(conn, project.id)
    versions = {row.image_id: int(row.version) for row in masks}
    if output == "ids":
        return [row.id for row in images]
    if output != "all":
        return {
            "total": len(images),
            "completed": len(human),
            "label_tags": {FINAL_TAG: len(human)},
            "train": len(human),
        }
    objects: dict[str, Any] = {}
    for row in images:
        entry: dict[str, Any] = {
            "image": {
                "ext": ".png",
                "info": {
                    "name": f"{row.id}.png",
                    "width": row.width,
                    "height": row.height,
                    "modality": row.modality,
                    "held_out": bool(row.held_out),
                    "ts": int(row.created_at.timestamp()),
                },
            },
            "labels": {},
        }
        if row.id in versions:
            tag = FINAL_TAG if row.id in human else "original"
            entry["labels"][tag] = {"ext": ".png", "info": {"version": versions[row.id]}}
        objects[row.id] = entry
    return {"name": project.name, "description": "medal project", "objects": objects}


def decode_label(data: bytes, filename: str) -> Mask:
    """A label file as a 2D mask of class indices: PNG, or NIfTI (``.nii``/``.nii.gz``) with one slice."""
    lower = filename.lower()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return mask_codec.decode_png(data)
    if lower.endswith((".nii", ".nii.gz")):
        return _decode_nifti(data)
    raise UnsupportedLabel("label must be a PNG of class indices or a single-slice NIfTI (.nii, .nii.gz)")


def _decode_nifti(data: bytes) -> Mask:
    import nibabel as nib

    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    try:
        image = nib.Nifti1Image.from_stream(io.BytesIO(raw))
        array = np.asarray(image.dataobj)
    except Exception as exc:  # nibabel raises many types for a broken file
        raise InvalidMask(f"label NIfTI cannot be read ({type(exc).__name__})") from None
    array = np.squeeze(array)
    if array.ndim != 2:
        raise InvalidMask(f"label NIfTI must hold one 2D slice, it has shape {array.shape}")
    if array.min(initial=0) < 0 or array.max(initial=0) > 255:
        raise InvalidMask("label values must be class indices 0..255")
    return np.ascontiguousarray(array.T).astype(np.uint8)  # NIfTI is (x, y); masks are (row, column)


@dataclass(frozen=True)
class SavedLabel:
    image_id: str
    version: int
    task_id: str | None
    round_completed: bool


async def save_label(platform: Platform, project_name: str, image_id: str, caller_id: str, mask: Mask) -> SavedLabel:
    """Submit the caller's leased task of this image; without a lease, save a new mask version as the caller."""
    t = tables.tasks
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        image_project = (
            await conn.execute(select(tables.images.c.project_id).where(tables.images.c.id == image_id))
        ).scalar()
        if image_project != project.id:
            raise ImageNotFound(image_id, project_name)
        lease = (
            await conn.execute(
                select(t.c.id, t.c.lease_token)
                .where(t.c.image_id == image_id, t.c.state == "leased", t.c.lease_owner == caller_id)
                .limit(1)
            )
        ).first()
        version = await tasks.mask_version(conn, image_id)
    if lease is not None:
        try:
            stored = await tasks.submit(platform, lease.id, lease.lease_token, caller_id, mask)
            return SavedLabel(image_id, stored.version, lease.id, stored.round_completed)
        except LeaseExpired:
            pass  # The lease ran out meanwhile: the work is still saved, as a new version outside the round.
    stored = await tasks.edit_mask(platform, image_id, version, caller_id, mask)
    return SavedLabel(image_id, stored.version, None, False)


async def label_png(platform: Platform, project_name: str, image_id: str) -> tuple[int, bytes]:
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        owner = (await conn.execute(select(tables.images.c.project_id).where(tables.images.c.id == image_id))).scalar()
    if owner != project.id:
        raise LabelNotFound(image_id)
    try:
        version, png, *_ = await tasks.current_mask(platform, image_id)
    except MaskNotFound:
        raise LabelNotFound(image_id) from None
    return version, png


def _ts(moment: Any) -> str | None:
    return moment.strftime(TIMESTAMP) if moment is not None else None


async def training_state(platform: Platform, project_name: str) -> dict[str, Any]:
    """The latest round's training as MONAI Label reports a train task.

    RUNNING until its model arrives, then DONE; ERROR (as MONAI Label reports a failed task, with the
    reason in ``details``) when the trainer announced that the round failed — ``POST /train/`` retries it.
    """
    summaries = await labelling.list_rounds(platform, project_name)
    models = await labelling.list_models(platform, project_name)
    trained_rounds = {m.round_id for m in models}
    latest = next((r for r in reversed(summaries) if r.state != "open"), None)
    model = next((m for m in models if latest is not None and m.round_id == latest.id), None)
    newest = models[-1] if models else None
    state: dict[str, Any] = {
        "id": latest.id if latest else None,
        "type": "train",
        "name": MODEL_NAME,
        "status": _status(latest, trained_rounds),
        "round": latest.number if latest else None,
        "attempt": latest.attempt if latest else None,
        "open_round": next((r.number for r in summaries if r.state == "open"), None),
        "start_ts": _ts(latest.completed_at) if latest else None,
        "end_ts": _end(latest, model),
        "result": None
        if newest is None
        else {"version": newest.version, "labels": newest.labels, "validation_dice": newest.validation_dice},
        "details": [],
        "failure": None,
    }
    if latest is not None and latest.failure is not None:
        failure = latest.failure
        state["failure"] = failure.model_dump(mode="json")
        state["details"] = [
            f"round {failure.round_number} attempt {failure.attempt} failed ({failure.code}): {failure.reason}"
        ]
    return state


def _status(latest: Round | None, trained_rounds: set[str]) -> str:
    if latest is None:
        return "NONE"
    if latest.state == retries.FAILED:
        return "ERROR"
    return "DONE" if latest.id in trained_rounds else "RUNNING"


def _end(latest: Round | None, model: ModelVersion | None) -> str | None:
    if latest is not None and latest.failure is not None:
        return _ts(latest.failure.failed_at)
    return _ts(model.created_at) if model is not None else None


async def start_training(platform: Platform, project_name: str) -> str:
    """Retry the latest round when its training failed, else close the open round (NoOpenRound: neither)."""
    summaries = await labelling.list_rounds(platform, project_name)
    latest = next((r for r in reversed(summaries) if r.state != "open"), None)
    if latest is not None and latest.state == retries.FAILED:
        await retries.retry_round(platform, project_name, latest.id)
        return latest.id
    open_round = next((r for r in summaries if r.state == "open"), None)
    if open_round is None:
        raise NoOpenRound("no round is open: training starts when a round completes")
    await labelling.close_round(platform, open_round.id)
    return open_round.id
