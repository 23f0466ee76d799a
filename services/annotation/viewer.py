"""What the web UI shows beside the labelling API: images under a CT window preset, a round's task holders."""

from __future__ import annotations

import asyncio
import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import select

from medal.db.schema import annotation as tables
from medal.platform import Platform
from services.annotation.errors import ImageNotFound, RoundNotFound
from services.annotation.records import RoundTask
from services.annotation.settings import WINDOW_PRESETS


def window(values: NDArray[np.int32], center: float, width: float) -> NDArray[np.uint8]:
    """Modality values (HU for CT) → 8-bit grey through a linear window (DICOM PS3.3 C.11.2.1.2, simplified)."""
    low = center - width / 2
    scaled = (values.astype(np.float64) - low) / max(width, 1.0) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


async def windowed_png(platform: Platform, image_id: str, preset: str) -> bytes:
    """The image under a window preset; ``image`` (or a colour image) gives the ingest display PNG."""
    i = tables.images
    async with platform.db.connect() as conn:
        row = (await conn.execute(select(i).where(i.c.id == image_id))).first()
    if row is None:
        raise ImageNotFound(image_id)
    limits = WINDOW_PRESETS.get(preset)
    if limits is None:
        return await asyncio.to_thread(platform.store.get, row.display_key)
    data = await asyncio.to_thread(platform.store.get, row.training_key)
    pixels = np.asarray(Image.open(io.BytesIO(data)))
    if pixels.ndim != 2:
        return await asyncio.to_thread(platform.store.get, row.display_key)
    grey = window(pixels.astype(np.int32) - int(row.training_offset or 0), *limits)
    buffer = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


async def round_tasks(platform: Platform, round_id: str) -> list[RoundTask]:
    t = tables.tasks
    async with platform.db.connect() as conn:
        exists = (await conn.execute(select(tables.rounds.c.id).where(tables.rounds.c.id == round_id))).first()
        if exists is None:
            raise RoundNotFound(round_id)
        rows = await conn.execute(
            select(t.c.id.label("task_id"), t).where(t.c.round_id == round_id).order_by(t.c.position)
        )
        return [RoundTask.model_validate(row) for row in rows]
