"""Query and inference inside the running embedded app: consumer threads, outbox relay, in-process bus."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from medal.app import build_app
from medal.local_server import serve_in_thread
from medal.platform import Platform
from medal.settings import Settings
from proto import ImageIngested
from proto.envelope import envelope_for
from tests.committee_helpers import model_trained, store_images
from tests.e2e.helpers import wait_for


def test_model_trained_leads_to_a_selection_and_to_predictions(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path, api_keys=[]), ["query", "inference"], consume=True, migrate=True)
    with serve_in_thread(app) as base, httpx.Client(timeout=30) as client:
        platform: Platform = app.state.platform
        items = store_images(platform, 70)
        first = items[0]
        ingested = ImageIngested(
            project="chest",
            image_id=first.image_id,
            study_id=uuid.uuid4(),
            series_id=uuid.uuid4(),
            instance_id=uuid.uuid4(),
            frame=0,
            modality="CT",
            width=20,
            height=12,
            display_key="display/aa/a.png",
            display_sha256="0" * 64,
            training_key=first.image_key,
            training_sha256="0" * 64,
        )
        platform.bus.publish(envelope_for(ingested, source="ingest"))
        trained = model_trained(platform, items)
        platform.bus.publish(envelope_for(trained, source="trainer"))

        def selections() -> list[dict[str, Any]]:
            listed: list[dict[str, Any]] = client.get(f"{base}/query/v1/projects/chest/selections").json()
            return listed

        (selection,) = wait_for(selections)
        assert selection["model_version_id"] == str(trained.model_version_id) and len(selection["chosen"]) == 3
        assert client.post(f"{base}/query/v1/selections/{selection['id']}/replay").json()["matches"] is True

        def predicted() -> httpx.Response | None:
            response = client.post(
                f"{base}/inference/v1/projects/chest/predict", json={"image_id": str(first.image_id)}
            )
            return response if response.status_code == 200 else None

        body = wait_for(predicted).json()
        assert body["model_version_id"] == str(trained.model_version_id) and (body["width"], body["height"]) == (20, 12)
        assert wait_for(lambda: platform.bus.depth("annotation.events") == 3)  # image, model, batch.selected
