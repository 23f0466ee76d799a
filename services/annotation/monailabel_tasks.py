"""MONAI Label's datastore checks, data list, scoring, batch inference and model file, on medal's own terms.

- Checksums are MONAI Label's ``file_checksum`` form, ``SHA256:<hex>`` (MD5, SHA512 too), over the bytes
  the download route sends.
- Label tags: ``final`` is an image's newest mask when a person made it, ``original`` when the model did.
- Scoring: medal scores the unlabelled pool itself after every model (the query service ranks it with the
  project's strategy and the next round opens from that ranking); ``/scoring`` reports that run for the
  current model, and asking for it never scores twice.
- Batch inference is auto-labelling: every unlabelled image gets a machine-made mask from the current
  model; human labels are never overwritten.
- The model file is the committee: its members' weights, in one zip.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import zipfile
from typing import Any

from sqlalchemy import select

from medal.db.schema import annotation as tables
from medal.domain_errors import Conflict, Invalid, NotFound
from medal.platform import Platform
from services.annotation import labelling, loop_events, projects, service, tasks
from services.annotation.errors import EmptyPool, ImageNotFound, LabelNotFound, MaskNotFound, NoModel, ProjectStarted
from services.annotation.monailabel_compat import FINAL_TAG, MODEL_NAME, TIMESTAMP, next_sample
from services.annotation.records import AutoLabelJob

ORIGINAL_TAG = "original"
ALGORITHMS = ("SHA256", "SHA512", "MD5")


class ChecksumMismatch(NotFound, code="checksum-mismatch"):
    """MONAI Label answers a HEAD whose ``check_sum`` does not match with 404 (checksum failed)."""


class UnsupportedChecksum(Invalid, code="unsupported-checksum"):
    pass


class ModelNotFound(NotFound, code="model-not-found"):
    pass


class NotCancellable(Conflict, code="task-not-cancellable"):
    pass


def checksum(data: bytes, algo: str = "SHA256") -> str:
    return f"{algo}:{hashlib.new(algo.lower(), data).hexdigest()}"


def check(data: bytes, check_sum: str | None) -> None:
    """MONAI Label's ``check_sum`` query parameter: ``ALGO:hex`` or a bare SHA256 hex digest."""
    if not check_sum:
        return
    algo, _, digest = check_sum.rpartition(":")
    algo = (algo or "SHA256").upper()
    if algo not in ALGORITHMS:
        raise UnsupportedChecksum(f"check_sum algorithm must be one of {', '.join(ALGORITHMS)}")
    if checksum(data, algo) != f"{algo}:{digest.lower()}":
        raise ChecksumMismatch("image found, but its checksum does not match check_sum")


def checksum_headers(data: bytes) -> dict[str, str]:
    """The headers of a datastore object: its size, SHA256 (as ETag, Digest and MONAI Label's form)."""
    digest = hashlib.sha256(data)
    return {
        "Content-Length": str(len(data)),
        "ETag": f'"{digest.hexdigest()}"',
        "Digest": f"sha-256={base64.b64encode(digest.digest()).decode()}",
        "X-Checksum": f"SHA256:{digest.hexdigest()}",
    }


async def _image_project_id(platform: Platform, image_id: str) -> str | None:
    async with platform.db.connect() as conn:
        return (await conn.execute(select(tables.images.c.project_id).where(tables.images.c.id == image_id))).scalar()


async def image_of(platform: Platform, project_name: str, image_id: str) -> bytes:
    """The image's PNG as ``GET /datastore/image`` sends it; ImageNotFound unless it is in the project."""
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        row = (
            await conn.execute(
                select(tables.images.c.display_key).where(
                    tables.images.c.id == image_id, tables.images.c.project_id == project.id
                )
            )
        ).first()
    if row is None:
        raise ImageNotFound(image_id, project_name)
    return await service.image_png(platform, image_id)


async def label_of(platform: Platform, project_name: str, image_id: str, tag: str) -> tuple[int, bytes]:
    """(version, PNG) of the label with ``tag``: LabelNotFound when the image has none with that tag."""
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
    if await _image_project_id(platform, image_id) != project.id:
        raise LabelNotFound(image_id)
    try:
        version, png, machine_made, *_ = await tasks.current_mask(platform, image_id)
    except MaskNotFound:
        raise LabelNotFound(image_id) from None
    if tag != (ORIGINAL_TAG if machine_made else FINAL_TAG):
        raise LabelNotFound(image_id)
    return version, png


async def next_sample_starting(platform: Platform, project_name: str, caller_id: str) -> dict[str, Any]:
    """``POST /activelearning/{strategy}``: on a project without a round, its cold-start round starts first
    (``initial_labels`` images, seeded); the answer is then the caller's leased sample."""
    answer = await next_sample(platform, project_name, caller_id)
    if answer.get("status") != "not-started":
        return answer
    try:
        await labelling.start_round(platform, project_name)
    except EmptyPool:
        return {"status": "not-started", "reason": "the project has no images yet: add some, then ask again"}
    except ProjectStarted:
        pass  # another caller started it meanwhile
    return await next_sample(platform, project_name, caller_id)


async def datalist(platform: Platform, project_name: str) -> list[dict[str, str]]:
    """``GET /datastore/?output=train``: the labelled images as MONAI Label's data list (image, label URIs)."""
    m, i = tables.masks, tables.images
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        rows = (
            await conn.execute(
                select(m.c.image_id).where(m.c.project_id == project.id, m.c.machine_made.is_(False)).distinct()
            )
        ).all()
        held = {r.id for r in await conn.execute(select(i.c.id).where(i.c.project_id == project.id, i.c.held_out))}
    base = f"/annotation/monailabel/{project.name}/datastore"
    return [
        {"image": f"{base}/image?image={r.image_id}", "label": f"{base}/label?label={r.image_id}&tag={FINAL_TAG}"}
        for r in sorted(rows, key=lambda r: r.image_id)
        if r.image_id not in held
    ]


def _ts(moment: Any) -> str | None:
    return moment.strftime(TIMESTAMP) if moment is not None else None


async def scoring_state(platform: Platform, project_name: str) -> dict[str, Any]:
    """The pool's scoring with the current model, as MONAI Label reports a scoring task."""
    s = tables.selections
    models = await labelling.list_models(platform, project_name)
    current = next((m for m in reversed(models) if m.current), models[-1] if models else None)
    state: dict[str, Any] = {"type": "scoring", "name": "medal", "status": "NONE", "result": None, "details": []}
    if current is None:
        return state
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        selection = (
            await conn.execute(
                select(s).where(s.c.project_id == project.id, s.c.model_version_id == current.id).limit(1)
            )
        ).first()
    state["id"] = current.id
    state["start_ts"] = _ts(current.created_at)
    if selection is None:
        state["status"] = "RUNNING"
        state["details"] = [f"ranking the unlabelled images with model version {current.version}"]
        return state
    state |= {
        "status": "DONE",
        "end_ts": _ts(selection.created_at),
        "result": {
            "model_version": current.version,
            "selected": len(selection.chosen),
            "backlog": len(selection.backlog),
        },
    }
    return state


async def start_scoring(platform: Platform, project_name: str) -> dict[str, Any]:
    """``POST /scoring/{method}``: the scoring run of the current model (medal starts it after training)."""
    state = await scoring_state(platform, project_name)
    if state["status"] == "NONE":
        raise NoModel("scoring ranks the pool with a trained model: train one first (POST /train/)")
    return state


async def batch_infer(platform: Platform, project_name: str, images: str) -> AutoLabelJob:
    """``POST /batch/infer/{model}``: auto-label the unlabelled images with the current model."""
    if images == "labeled":
        raise Invalid("medal never overwrites labels: batch inference runs on unlabeled images (images=unlabeled)")
    return await loop_events.request_autolabel(platform, project_name, None)


async def batch_state(platform: Platform, project_name: str) -> dict[str, Any]:
    async with platform.db.connect() as conn:
        project = await projects.load_project(conn, project_name)
        jobs = await loop_events.autolabel_progress(conn, project.id)
    if not jobs:
        return {"type": "batch_infer", "status": "NONE", "details": []}
    latest = jobs[-1]
    return {
        "id": latest.job_id,
        "type": "batch_infer",
        "name": MODEL_NAME,
        "status": "DONE" if latest.complete else "RUNNING",
        "result": {"images": latest.images, "shards": latest.shards, "shards_done": latest.shards_done},
        "details": [job.model_dump(mode="json") for job in jobs],
    }


async def _current_model(platform: Platform, project_name: str, model: str) -> Any:
    if model != MODEL_NAME:
        raise ModelNotFound(f"Model File NOT Found for {model}: this app serves {MODEL_NAME!r}")
    models = await labelling.list_models(platform, project_name)
    current = next((m for m in reversed(models) if m.current), None)
    if current is None:
        raise ModelNotFound(f"Model File NOT Found for {model}: no model version is current yet")
    async with platform.db.connect() as conn:
        row = (await conn.execute(select(tables.models).where(tables.models.c.id == current.id))).first()
    return row


async def model_info(platform: Platform, project_name: str, model: str) -> dict[str, Any]:
    """``GET /model/info/{model}``: the current version's checksum and time, as MONAI Label's model_info."""
    row = await _current_model(platform, project_name, model)
    manifest = json.dumps({"version": row.version, "members": list(row.member_keys)}).encode()
    return {
        "checksum": checksum(manifest),
        "modified_time": int(row.created_at.timestamp()),
        "version": row.version,
        "members": len(row.member_keys),
    }


async def model_file(platform: Platform, project_name: str, model: str) -> tuple[int, bytes]:
    """``GET /model/{model}``: (version, zip of the committee's member weights and a manifest)."""
    row = await _current_model(platform, project_name, model)

    def pack() -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for number, key in enumerate(row.member_keys):
                archive.writestr(f"member-{number}.pt", platform.store.get(key))
            manifest = {"version": row.version, "training": row.training, "validation_dice": row.validation_dice}
            archive.writestr("model.json", json.dumps(manifest, indent=2))
        return buffer.getvalue()

    return row.version, await asyncio.to_thread(pack)
