"""Test data shared by several test modules."""

from __future__ import annotations

import uuid

from proto import ImageIngested


def image_ingested(project: str = "p", n: int = 0, *, width: int = 4, height: int = 4) -> ImageIngested:
    """A valid image.ingested.v1 payload with fresh ids and content-hash keys derived from ``n``."""
    digest = f"{n:064x}"
    return ImageIngested(
        project=project,
        image_id=uuid.uuid4(),
        study_id=uuid.uuid4(),
        series_id=uuid.uuid4(),
        instance_id=uuid.uuid4(),
        frame=0,
        modality="CT",
        width=width,
        height=height,
        display_key=f"display/{digest[:2]}/{digest}.png",
        display_sha256=digest,
        training_key=f"training/{digest[:2]}/{digest}.png",
        training_sha256=digest,
    )
