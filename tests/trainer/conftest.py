"""Tiny labelled sets in object storage, round messages, and a trainer platform on SQLite or PostgreSQL."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from medal.bus.inprocess import InProcessBus
from medal.db.migrate import upgrade
from medal.db.schema import messaging
from medal.platform import Platform
from medal.settings import Settings
from medal.storage import ObjectStore
from proto import Envelope
from proto.envelope import Message, decode, encode, envelope_for
from proto.loop import RoundCompleted, SelectionSpec, TrainingSpec
from proto.manifests import LabelledItem, LabelledSet, Pool
from services.trainer.handlers import consumer

TINY_SPEC = TrainingSpec(num_classes=2, image_size=16, width=1 / 16, max_epochs=2, patience=2, batch_size=8)
SELECTION = SelectionSpec(strategy="suggestive", candidates=4, batch=2)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def write_labelled_set(
    store: ObjectStore, project: str, round_id: uuid.UUID, *, count: int = 6, size: int = 24, seed: int = 0
) -> str:
    """``count`` random 16-bit grey images with a bright disc (class 1) and their masks; the manifest's key."""
    rng = np.random.default_rng(seed)
    items = []
    yy, xx = np.mgrid[:size, :size]
    for _ in range(count):
        cy, cx = rng.integers(6, size - 6, size=2)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < 16).astype(np.uint8)
        image = (rng.normal(1000, 50, (size, size)) + 600.0 * mask).clip(0, 65535).astype(np.uint16)
        image_key = store.put_content("images", _png(image), "png", "image/png").key
        mask_key = store.put_content("masks", _png(mask), "png", "image/png").key
        items.append(LabelledItem(image_id=uuid.uuid4(), image_key=image_key, offset=1024, mask_key=mask_key))
    manifest = LabelledSet(project=project, round_id=round_id, num_classes=2, items=items)
    return store.put_content("manifests", manifest.model_dump_json().encode(), "json", "application/json").key


def write_pool(store: ObjectStore, project: str, round_id: uuid.UUID) -> str:
    pool = Pool(project=project, round_id=round_id, items=[])
    return store.put_content("manifests", pool.model_dump_json().encode(), "json", "application/json").key


def round_completed(
    store: ObjectStore,
    project: str = "chest",
    *,
    round_number: int = 0,
    committee: int = 2,
    spec: TrainingSpec = TINY_SPEC,
    labelled_set_key: str | None = None,
    seed: int = 7,
    round_id: uuid.UUID | None = None,
    attempt: int = 1,
) -> tuple[Envelope, RoundCompleted]:
    round_id = round_id or uuid.uuid4()
    key = labelled_set_key or write_labelled_set(store, project, round_id, seed=round_number)
    event = RoundCompleted(
        project=project,
        round_id=round_id,
        round_number=round_number,
        labels=6,
        labelled_set_key=key,
        pool_key=write_pool(store, project, round_id),
        committee_size=committee,
        training=spec,
        selection=SELECTION,
        seed=seed,
        attempt=attempt,
    )
    return envelope_for(event, source="annotation"), event


def broken_mask_set(store: ObjectStore, project: str, round_id: uuid.UUID, *, count: int = 2) -> tuple[str, str]:
    """A labelled set whose first mask is not a PNG: (manifest key, the broken image's id)."""
    key = write_labelled_set(store, project, round_id, count=count)
    manifest = LabelledSet.model_validate_json(store.get(key))
    junk = store.put_content("masks", b"this is not a png", "png", "image/png").key
    items = [manifest.items[0].model_copy(update={"mask_key": junk}), *manifest.items[1:]]
    broken = manifest.model_copy(update={"items": items})
    return (
        store.put_content("manifests", broken.model_dump_json().encode(), "json", "application/json").key,
        str(items[0].image_id),
    )


async def deliver(platform: Platform, envelope: Envelope) -> None:
    """Hand a round.completed.v1 to the trainer's bus handler, as the consumer does."""
    handler = consumer.bind(platform)[envelope.type]
    await handler(*decode(encode(envelope)))


async def outbox_messages(platform: Platform, message_type: str) -> list[tuple[Envelope, Message]]:
    """The trainer's queued messages of one type, oldest first."""
    o = messaging.outbox
    async with platform.db.connect() as conn:
        bodies = (
            await conn.execute(select(o.c.body).where(o.c.message_type == message_type).order_by(o.c.created_at))
        ).scalars()
        return [decode(body) for body in bodies]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'medal.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


@pytest.fixture
async def platform(database_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, trainer_lease_seconds=30)
    built = Platform.build(settings, ["trainer"], bus=InProcessBus())
    try:
        yield built
    finally:
        await built.db.dispose()
