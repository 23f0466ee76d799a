"""The trainer's job loop on SQLite and its pure parts: training one member, bad data, warm start, stop, lost lease."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import select, update

from medal.bus.inprocess import InProcessBus
from medal.db.migrate import upgrade
from medal.db.schema import trainer as tables
from medal.model.device import select_device
from medal.model.preprocess import IN_CHANNELS
from medal.model.weights import save_member
from medal.platform import Platform
from medal.settings import Settings
from proto.loop import ModelTrained, RoundFailed
from proto.manifests import LabelledItem, LabelledSet
from services.trainer.config import build_training_config
from services.trainer.jobs import claim_next_job
from services.trainer.member import BadTrainingData, load_labelled_set, train_one_member, warm_start_state
from services.trainer.runner import JobRunner
from services.trainer.training import EpochReport, build_model
from tests.trainer.conftest import (
    TINY_SPEC,
    broken_mask_set,
    deliver,
    outbox_messages,
    round_completed,
    write_labelled_set,
)

CPU = select_device("cpu", threads=1)


@pytest.fixture
async def sqlite_platform(tmp_path: Path) -> AsyncIterator[Platform]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'medal.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = Settings(data_dir=tmp_path, database_url=url, trainer_threads=1, trainer_heartbeat_seconds=0.2)
    platform = Platform.build(settings, ["trainer"], bus=InProcessBus())
    try:
        yield platform
    finally:
        await platform.db.dispose()


def test_one_member_reports_every_epoch_and_can_be_stopped(tmp_path: Path) -> None:
    from medal.storage.directory import DirectoryStore

    store = DirectoryStore(tmp_path)
    data = load_labelled_set(store, write_labelled_set(store, "p", uuid.uuid4()), TINY_SPEC)
    assert data.images.shape == (6, 1, 16, 16) and data.masks.shape == (6, 16, 16)
    seen: list[tuple[int, float]] = []
    result = train_one_member(data, TINY_SPEC, 11, CPU, lambda report, dice: seen.append((report.epoch, dice)))
    assert [epoch for epoch, _ in seen] == [1, 2] and all(0.0 <= dice <= 1.0 for _, dice in seen)
    assert result.epochs == 2 and 0.0 <= result.validation_dice <= 1.0

    def stop(report: EpochReport, _dice: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_one_member(data, TINY_SPEC, 11, CPU, stop)


def test_unreadable_training_data_is_a_bad_training_data_error(tmp_path: Path) -> None:
    from medal.storage.directory import DirectoryStore

    store = DirectoryStore(tmp_path)
    key = write_labelled_set(store, "p", uuid.uuid4(), count=2)
    manifest = LabelledSet.model_validate_json(store.get(key))
    broken = manifest.model_copy(
        update={"items": [LabelledItem(**{**manifest.items[0].model_dump(), "mask_key": "masks/00/gone.png"})]}
    )
    broken_key = store.put_content("manifests", broken.model_dump_json().encode(), "json", "application/json").key
    with pytest.raises(BadTrainingData, match="not in object storage"):
        load_labelled_set(store, broken_key, TINY_SPEC)
    with pytest.raises(BadTrainingData, match="holds class 1"):
        load_labelled_set(store, key, TINY_SPEC.model_copy(update={"num_classes": 1}))


def test_warm_start_takes_weights_only_when_they_fit() -> None:
    model = build_model(IN_CHANNELS, 2, build_training_config(TINY_SPEC))
    data = save_member(model, TINY_SPEC)
    state = warm_start_state(data, TINY_SPEC, on_gpu=False)
    assert state is not None and torch.equal(state["classifier.bias"], model.state_dict()["classifier.bias"])
    assert warm_start_state(data, TINY_SPEC.model_copy(update={"num_classes": 3}), on_gpu=False) is None
    assert warm_start_state(data, TINY_SPEC.model_copy(update={"width": 1 / 8}), on_gpu=False) is None
    assert warm_start_state(b"junk", TINY_SPEC, on_gpu=False) is None


async def test_a_job_with_a_missing_mask_fails_with_its_round(sqlite_platform: Platform) -> None:
    platform = sqlite_platform
    round_id = uuid.uuid4()
    key = write_labelled_set(platform.store, "chest", round_id, count=2)
    manifest = LabelledSet.model_validate_json(platform.store.get(key))
    gone = [LabelledItem(**{**item.model_dump(), "mask_key": "masks/00/gone.png"}) for item in manifest.items]
    key = platform.store.put_content(
        "manifests", manifest.model_copy(update={"items": gone}).model_dump_json().encode(), "json", "application/json"
    ).key
    envelope, _ = round_completed(platform.store, committee=2, labelled_set_key=key, round_id=round_id)
    await deliver(platform, envelope)
    runner = JobRunner(platform, compute=CPU)
    job = await claim_next_job(platform, "w", runner.policy)
    assert job is not None
    assert await runner.run_job(job, asyncio.Event()) == "failed"
    j, r = tables.jobs, tables.rounds
    async with platform.db.connect() as conn:
        failed = (await conn.execute(select(j.c.error).where(j.c.id == job.id))).scalar()
        round_state = (await conn.execute(select(r.c.state).where(r.c.id == str(round_id)))).scalar()
    assert "not in object storage" in failed and round_state == "failed"
    assert await claim_next_job(platform, "w", runner.policy) is None  # the sibling is not trained in vain
    ((_, message),) = await outbox_messages(platform, "round.failed.v1")
    assert isinstance(message, RoundFailed) and message.code == "bad-training-data"
    assert f"the mask of image {manifest.items[0].image_id}" in message.reason
    assert "submit a new mask for that image and retry the round" in message.reason


async def test_an_undecodable_mask_fails_the_round_and_a_retry_trains_it(sqlite_platform: Platform) -> None:
    platform = sqlite_platform
    round_id = uuid.uuid4()
    key, image_id = broken_mask_set(platform.store, "chest", round_id)
    envelope, _ = round_completed(platform.store, committee=1, labelled_set_key=key, round_id=round_id)
    await deliver(platform, envelope)
    runner = JobRunner(platform, compute=CPU)
    job = await claim_next_job(platform, "w", runner.policy)
    assert job is not None and await runner.run_job(job, asyncio.Event()) == "failed"
    ((_, message),) = await outbox_messages(platform, "round.failed.v1")
    assert isinstance(message, RoundFailed) and message.code == "bad-training-data" and message.attempt == 1
    assert f"mask of image {image_id} cannot be decoded" in message.reason

    retry, _ = round_completed(platform.store, committee=1, round_id=round_id, attempt=2)  # a fixed labelled set
    await deliver(platform, retry)
    job = await claim_next_job(platform, "w", runner.policy)
    assert job is not None and job.round_attempt == 2
    assert await runner.run_job(job, asyncio.Event()) == "done"
    ((_, trained),) = await outbox_messages(platform, "model.trained.v2")
    assert isinstance(trained, ModelTrained) and trained.round_id == round_id and trained.version == 1
    assert len(await outbox_messages(platform, "round.failed.v1")) == 1


async def test_stop_gives_the_job_back_and_a_lost_lease_discards_the_result(sqlite_platform: Platform) -> None:
    platform = sqlite_platform
    envelope, _ = round_completed(platform.store, committee=1)
    await deliver(platform, envelope)
    runner = JobRunner(platform, compute=CPU)
    stopped = asyncio.Event()
    stopped.set()
    job = await claim_next_job(platform, "w", runner.policy)
    assert job is not None and await runner.run_job(job, stopped) == "released"
    j = tables.jobs
    async with platform.db.connect() as conn:
        assert (await conn.execute(select(j.c.state, j.c.attempts))).one() == ("queued", 0)

    job = await claim_next_job(platform, "w", runner.policy)
    assert job is not None
    async with platform.db.begin() as conn:  # another worker took the job over meanwhile
        await conn.execute(update(j).where(j.c.id == job.id).values(lease_token=str(uuid.uuid4())))
    assert await runner.run_job(job, asyncio.Event()) == "lease-lost"
    async with platform.db.connect() as conn:
        assert (await conn.execute(select(j.c.state, j.c.weights_key))).one() == ("running", None)


async def test_warm_start_begins_from_the_previous_versions_member(sqlite_platform: Platform) -> None:
    platform = sqlite_platform
    runner = JobRunner(platform, compute=CPU)
    envelope, _ = round_completed(platform.store, committee=1)
    await deliver(platform, envelope)
    first = await claim_next_job(platform, "w", runner.policy)
    assert first is not None and await runner.run_job(first, asyncio.Event()) == "done"
    assert await runner.previous_member_weights(first) is None  # its own round does not count

    warm = TINY_SPEC.model_copy(update={"warm_start": True})
    envelope, _ = round_completed(platform.store, round_number=1, committee=1, spec=warm)
    await deliver(platform, envelope)
    second = await claim_next_job(platform, "w", runner.policy)
    assert second is not None
    previous = await runner.previous_member_weights(second)
    j = tables.jobs
    async with platform.db.connect() as conn:
        first_key = (await conn.execute(select(j.c.weights_key).where(j.c.id == first.id))).scalar()
    assert previous == platform.store.get(first_key)
    assert await runner.run_job(second, asyncio.Event()) == "done"
