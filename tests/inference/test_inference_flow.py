"""Inference in embedded mode: images and model versions from events, auto-label shards, REST predict."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Mapping
from datetime import timedelta

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from medal.bus import Handler, PermanentFailure
from medal.db.schema import inference as tables
from medal.domain_errors import NotYetAvailable
from medal.model.committees import committees_of
from medal.platform import Platform
from proto import ImageIngested, Message
from proto.envelope import Envelope, envelope_for
from proto.loop import AutoLabel, ModelPromoted, PoolItem, PredictionsStored
from services.inference.handlers import consumer
from services.inference.main import create_app
from tests.committee_helpers import (
    TINY,
    model_trained,
    outbox_messages,
    png16,
    promoted,
    store_images,
)

SHA = "0" * 64


def ingested(item: PoolItem, width: int, height: int, project: str = "chest") -> ImageIngested:
    return ImageIngested(
        project=project,
        image_id=item.image_id,
        study_id=uuid.uuid4(),
        series_id=uuid.uuid4(),
        instance_id=uuid.uuid4(),
        frame=0,
        modality="CT",
        width=width,
        height=height,
        display_key="display/aa/a.png",
        display_sha256=SHA,
        training_key=item.image_key,
        training_sha256=SHA,
    )


async def deliver(handle: Mapping[str, Handler], message: Message, source: str = "trainer") -> Envelope:
    """Deliver ``message`` once under a new message id, as the bus would."""
    envelope = envelope_for(message, source=source)
    await handle[message.TYPE](envelope, message)
    return envelope


async def current_versions(platform: Platform) -> list[int]:
    m = tables.models
    async with platform.db.connect() as conn:
        return list((await conn.execute(select(m.c.version).where(m.c.current.is_(True)))).scalars())


async def test_only_the_trainers_promotion_makes_a_version_current(any_platform: Platform) -> None:
    platform = any_platform
    handle = consumer.bind(platform)
    first, second = model_trained(platform, 1), model_trained(platform, 2)
    for event in (first, second):
        await deliver(handle, event)
    assert await current_versions(platform) == []  # recorded, not current: that is the trainer's decision
    await deliver(handle, promoted(first))
    assert await current_versions(platform) == [1]
    await deliver(handle, promoted(second))
    assert await current_versions(platform) == [2]
    await deliver(handle, promoted(first))  # a roll-back is a promotion too
    assert await current_versions(platform) == [1]


async def test_a_promotion_before_its_version_is_retried_until_the_version_is_known(any_platform: Platform) -> None:
    platform = any_platform
    handle = consumer.bind(platform)
    first = model_trained(platform, 1)
    await deliver(handle, first)
    await deliver(handle, promoted(first))
    second = model_trained(platform, 2)
    early = envelope_for(promoted(second), source="trainer")
    with pytest.raises(NotYetAvailable) as refused:  # not permanent: the bus retries it with back-off
        await handle[ModelPromoted.TYPE](early, promoted(second))
    assert refused.value.code == "model-version-not-known"
    assert await current_versions(platform) == [1]
    await deliver(handle, second)
    await handle[ModelPromoted.TYPE](early, promoted(second))  # the retry applies now
    await handle[ModelPromoted.TYPE](early, promoted(second))  # and once: handled already
    assert await current_versions(platform) == [2]


async def test_a_promotion_overtaken_by_a_later_one_changes_nothing(any_platform: Platform) -> None:
    platform = any_platform
    handle = consumer.bind(platform)
    first, second = model_trained(platform, 1), model_trained(platform, 2)
    older = envelope_for(promoted(first), source="trainer")
    newer = envelope_for(promoted(second), source="trainer")
    newer = newer.model_copy(update={"time": older.time + timedelta(seconds=1)})
    for event in (first, second):
        await deliver(handle, event)
    await handle[ModelPromoted.TYPE](newer, promoted(second))
    await handle[ModelPromoted.TYPE](older, promoted(first))  # retried late: the trainer promoted 2 after it
    assert await current_versions(platform) == [2]


async def test_autolabel_stores_machine_masks_once_and_reports_them(platform: Platform) -> None:
    handle = consumer.bind(platform)
    model = model_trained(platform, 1)
    items = store_images(platform, 3, width=20, height=12)
    command = AutoLabel(
        project="chest",
        job_id=uuid.uuid4(),
        model_version_id=model.model_version_id,
        member_keys=model.member_keys,
        training=TINY,
        shard_index=1,
        shard_count=2,
        items=items,
    )
    delivery = envelope_for(command, source="annotation")
    await handle[AutoLabel.TYPE](delivery, command)
    await handle[AutoLabel.TYPE](delivery, command)  # redelivered
    await handle[AutoLabel.TYPE](envelope_for(command, source="annotation"), command)  # sent twice

    stored = await outbox_messages(platform, PredictionsStored.TYPE)
    assert len(stored) == 1
    envelope, event = stored[0]
    assert isinstance(event, PredictionsStored) and envelope.correlation_id == delivery.correlation_id
    assert (event.job_id, event.shard_index, event.shard_count) == (command.job_id, 1, 2)
    assert [p.image_id for p in event.predictions] == [i.image_id for i in items]
    for prediction in event.predictions:
        assert prediction.mask_key.startswith("predictions/") and 0.5 <= prediction.confidence <= 1.0
        mask = np.asarray(Image.open(io.BytesIO(platform.store.get(prediction.mask_key))))
        assert mask.shape == (12, 20) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    async with platform.db.connect() as conn:
        rows = (await conn.execute(select(tables.autolabel_shards))).all()
    assert len(rows) == 1 and rows[0].model_version_id == str(model.model_version_id)


async def test_predict_one_image_over_rest(platform: Platform) -> None:
    handle = consumer.bind(platform)
    (item,) = store_images(platform, 1, width=24, height=16)
    image_event = ingested(item, 24, 16)
    await handle[ImageIngested.TYPE](envelope_for(image_event, source="ingest"), image_event)
    app = create_app()
    app.state.platform = platform
    url = "/v1/projects/chest/predict"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://inference") as client:
        refused = await client.post(url, json={"image_id": str(item.image_id)})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "no-model"

        first, second = model_trained(platform, 1), model_trained(platform, 2)
        for event in (first, second):
            await deliver(handle, event)
        refused = await client.post(url, json={"image_id": str(item.image_id)})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "no-model"  # none promoted yet
        await deliver(handle, promoted(first))
        latest = await client.post(url, json={"image_id": str(item.image_id)})
        assert latest.status_code == 200, latest.text
        body = latest.json()
        assert (body["model_version_id"], body["version"]) == (str(first.model_version_id), 1)  # the current one
        assert (body["width"], body["height"]) == (24, 16) and 0.5 <= body["confidence"] <= 1.0
        mask = Image.open(io.BytesIO(base64.b64decode(body["mask_png_base64"])))
        assert mask.size == (24, 16) and mask.mode == "L"

        chosen = await client.post(
            url, json={"image_id": str(item.image_id), "model_version_id": str(second.model_version_id)}
        )
        assert chosen.status_code == 200 and chosen.json()["version"] == 2
        again = await client.post(url, json={"image_id": str(item.image_id)})
        assert again.json() == body  # deterministic, served from the cached committee
        assert committees_of(platform).loads == 2  # the consumer's cache serves the route too

        unknown_image = await client.post(url, json={"image_id": str(uuid.uuid4())})
        assert unknown_image.status_code == 404 and unknown_image.json()["error"]["code"] == "image-not-found"
        other_project = await client.post("/v1/projects/other/predict", json={"image_id": str(item.image_id)})
        assert other_project.status_code == 404
        unknown_model = await client.post(
            url, json={"image_id": str(item.image_id), "model_version_id": str(uuid.uuid4())}
        )
        assert unknown_model.status_code == 404 and unknown_model.json()["error"]["code"] == "model-not-found"

        # A MONAI Label session's image (annotation's /session): predicted, never recorded as an image.
        session_key = f"monailabel-sessions/chest/{uuid.uuid4()}/image.png"
        platform.store.put(session_key, png16(40, 30, seed=5), "image/png")
        session = await client.post(url, json={"session_key": session_key})
        assert session.status_code == 200, session.text
        assert (session.json()["width"], session.json()["height"], session.json()["version"]) == (40, 30, 1)
        foreign = await client.post("/v1/projects/other/predict", json={"session_key": session_key})
        assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "image-not-found"
        both = await client.post(url, json={"image_id": str(item.image_id), "session_key": session_key})
        assert both.status_code == 422
        outside = await client.post(url, json={"session_key": "weights/aa/secret.pt"})
        assert outside.status_code == 422  # only session images can be named


async def test_autolabel_leaves_out_unreadable_images(platform: Platform) -> None:
    handle = consumer.bind(platform)
    model = model_trained(platform, 1)
    good = store_images(platform, 2)
    missing = PoolItem(image_id=uuid.uuid4(), image_key="images/00/missing.png")

    def command(items: list[PoolItem]) -> AutoLabel:
        return AutoLabel(
            project="chest",
            job_id=uuid.uuid4(),
            model_version_id=model.model_version_id,
            member_keys=model.member_keys,
            training=TINY,
            shard_index=0,
            shard_count=1,
            items=items,
        )

    partial = command([good[0], missing, good[1]])
    await handle[AutoLabel.TYPE](envelope_for(partial, source="annotation"), partial)
    ((_, event),) = await outbox_messages(platform, PredictionsStored.TYPE)
    assert isinstance(event, PredictionsStored)
    assert [p.image_id for p in event.predictions] == [good[0].image_id, good[1].image_id]
    hopeless = command([missing])
    with pytest.raises(PermanentFailure, match="no-readable-image"):  # dead-lettered at once
        await handle[AutoLabel.TYPE](envelope_for(hopeless, source="annotation"), hopeless)
