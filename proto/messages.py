"""Commands and events exchanged by the services (the bus contract).

Types are ``<noun>.<verb>.v<N>``. Ids are de-identified: ``study_id`` and friends are medal's
own pseudonymous ids, never DICOM UIDs of the source; object keys are content hashes.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import Field

from proto.envelope import Message, register

SHA256 = r"^[0-9a-f]{64}$"
PROJECT = r"^[a-z0-9][a-z0-9-]{0,62}$"
OBJECT_KEY = r"^[a-z0-9][a-z0-9/._-]{0,511}$"


@register
class ImageIngested(Message):
    """Ingest stored one de-identified, rasterised frame and committed its rows."""

    TYPE: ClassVar[str] = "image.ingested.v1"
    KIND: ClassVar[str] = "event"

    project: str = Field(pattern=PROJECT)
    image_id: uuid.UUID
    study_id: uuid.UUID
    series_id: uuid.UUID
    instance_id: uuid.UUID
    frame: int = Field(ge=0)
    modality: str = Field(max_length=16)
    width: int = Field(ge=1, le=65535)
    height: int = Field(ge=1, le=65535)
    display_key: str = Field(pattern=OBJECT_KEY, description="8-bit PNG for viewing.")
    display_sha256: str = Field(pattern=SHA256)
    training_key: str = Field(pattern=OBJECT_KEY, description="16-bit PNG of modality values.")
    training_sha256: str = Field(pattern=SHA256)
    training_offset: int = Field(default=0, description="Subtract from training PNG values to get modality values.")
    dicom_key: str | None = Field(
        default=None, pattern=OBJECT_KEY, description="The de-identified DICOM instance (for DICOM SEG exports)."
    )
    quarantined: bool = Field(default=False, description="True: never offered for annotation.")


@register
class IngestJobCompleted(Message):
    """Every instance of one ingest submission has an outcome."""

    TYPE: ClassVar[str] = "ingest-job.completed.v1"
    KIND: ClassVar[str] = "event"

    project: str = Field(pattern=PROJECT)
    job_id: uuid.UUID
    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    quarantined: int = Field(ge=0)
    refused: int = Field(ge=0)
