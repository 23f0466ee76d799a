"""What the query and inference flow tests share: a migrated embedded platform, tiny members and images,
the loop events of a trained round."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import select

from medal.bus.inprocess import InProcessBus
from medal.db.migrate import upgrade
from medal.db.schema.messaging import outbox
from medal.model.fcn import SuggestiveFCN
from medal.model.weights import save_member
from medal.platform import Platform
from medal.settings import Settings
from proto import Envelope, Message
from proto.envelope import decode
from proto.loop import ModelPromoted, ModelTrained, PoolItem, RoundCompleted, SelectionSpec, TrainingSpec
from proto.manifests import Pool

TINY = TrainingSpec(num_classes=2, image_size=16, width=1 / 16, max_epochs=1, patience=1, batch_size=2)


async def build_platform(tmp_path: Path, service: str, database_url: str | None = None) -> Platform:
    """A migrated database (SQLite under ``tmp_path`` by default), a directory store, an in-process bus."""
    settings = Settings(data_dir=tmp_path, api_keys=[], database_url=database_url)
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    return Platform.build(settings, [service], bus=InProcessBus())


async def close(platform: Platform) -> None:
    platform.relay.close()
    platform.bus.close()
    await platform.db.dispose()


def store_members(platform: Platform, count: int = 2, seed: int = 0, spec: TrainingSpec = TINY) -> list[str]:
    """Untrained (random) members saved as the trainer saves them; their weight keys."""
    keys = []
    for member in range(count):
        torch.manual_seed(seed * 100 + member)
        model = SuggestiveFCN(1, spec.num_classes, width=spec.width, blocks_per_stage=(1, 1, 1, 1, 1))
        stored = platform.store.put_content("weights", save_member(model, spec), "pt", "application/octet-stream")
        keys.append(stored.key)
    return keys


def png16(width: int, height: int, seed: int) -> bytes:
    values = np.random.default_rng(seed).integers(0, 4000, size=(height, width)).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def store_images(platform: Platform, count: int, width: int = 20, height: int = 12, seed: int = 0) -> list[PoolItem]:
    """``count`` random 16-bit training PNGs in the store, as pool items."""
    items = []
    for index in range(count):
        stored = platform.store.put_content("images", png16(width, height, seed * 1000 + index), "png", "image/png")
        items.append(PoolItem(image_id=uuid.uuid4(), image_key=stored.key, offset=1024))
    return items


def selection_spec(strategy: str = "suggestive", candidates: int = 6, batch: int = 3) -> SelectionSpec:
    return SelectionSpec.model_validate({"strategy": strategy, "candidates": candidates, "batch": batch})


async def outbox_messages(platform: Platform, message_type: str) -> list[tuple[Envelope, Message]]:
    """Every queued message of one type, oldest first."""
    async with platform.db.connect() as conn:
        rows = (
            await conn.execute(
                select(outbox.c.body).where(outbox.c.message_type == message_type).order_by(outbox.c.created_at)
            )
        ).all()
    return [decode(row.body) for row in rows]


def round_completed(
    platform: Platform,
    items: list[PoolItem],
    strategy: str = "suggestive",
    *,
    round_id: uuid.UUID | None = None,
    attempt: int = 1,
    project: str = "chest",
) -> RoundCompleted:
    """round.completed.v1 of round 1 (``attempt``) of ``project``, with a pool manifest of ``items`` in the store."""
    round_id = round_id or uuid.uuid4()
    manifest = Pool(project=project, round_id=round_id, items=items)
    pool = platform.store.put_content("manifests", manifest.model_dump_json().encode(), "json", "application/json")
    return RoundCompleted(
        project=project,
        round_id=round_id,
        round_number=1,
        labels=4,
        labelled_set_key="manifests/aa/labelled.json",
        pool_key=pool.key,
        committee_size=2,
        training=TINY,
        selection=selection_spec(strategy, candidates=6, batch=3),
        seed=0,
        attempt=attempt,
    )


def model_trained(
    platform: Platform, version: int = 1, *, round_id: uuid.UUID | None = None, project: str = "chest"
) -> ModelTrained:
    """model.trained.v2 of ``version`` of ``project`` (trained in ``round_id``): two random members."""
    return ModelTrained(
        project=project,
        round_id=round_id or uuid.uuid4(),
        model_version_id=uuid.uuid4(),
        version=version,
        member_keys=store_members(platform, 2, seed=version),
        validation_dice=0.5,
        labels=4,
        training=TINY,
    )


def promoted(trained: ModelTrained) -> ModelPromoted:
    """The trainer's model.promoted.v1 of a trained version."""
    return ModelPromoted(project=trained.project, model_version_id=trained.model_version_id, version=trained.version)


@dataclass(frozen=True)
class TrainedRound:
    """A round as query sees it: its round.completed.v1, then the model.trained.v2 of its committee."""

    completed: RoundCompleted
    trained: ModelTrained


def trained_round(platform: Platform, items: list[PoolItem], strategy: str = "suggestive") -> TrainedRound:
    """Round 1 of "chest" with a pool of ``items``, and version 1 trained in it."""
    completed = round_completed(platform, items, strategy)
    return TrainedRound(completed, model_trained(platform, 1, round_id=completed.round_id))


def service_platform_fixtures(service: str) -> tuple[Any, Any, Any]:
    """``platform`` (SQLite), ``database_url`` (SQLite as None, or PostgreSQL) and ``any_platform`` on it."""

    @pytest.fixture(name="platform")
    async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
        built = await build_platform(tmp_path, service)
        yield built
        await close(built)

    @pytest.fixture(name="database_url", params=["sqlite", "postgresql"])
    def database_url(request: pytest.FixtureRequest) -> str | None:
        return None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))

    @pytest.fixture(name="any_platform")
    async def any_platform(database_url: str | None, tmp_path: Path) -> AsyncIterator[Platform]:
        built = await build_platform(tmp_path, service, database_url=database_url)
        yield built
        await close(built)

    return platform, database_url, any_platform
