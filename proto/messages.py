"""Commands and events exchanged by the services (the bus contract).

Types are ``<noun>.<verb>.v<N>``. Ids are de-identified: ``study_id`` and friends are medal's
own pseudonymous ids, never DICOM UIDs of the source; object keys are content hashes.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import Field

from proto.envelope import Message, register
from proto.types import ObjectKey, ProjectName, Sha256


@register
class ImageIngested(Message):
    """Ingest stored one de-identified, rasterised frame and committed its rows."""

    TYPE: ClassVar[str] = "image.ingested.v1"
    KIND: ClassVar[str] = "event"

    project: ProjectName
    image_id: uuid.UUID
    study_id: uuid.UUID
    series_id: uuid.UUID
    instance_id: uuid.UUID
    frame: int = Field(ge=0)
    modality: str = Field(max_length=16)
    width: int = Field(ge=1, le=65535)
    height: int = Field(ge=1, le=65535)
    display_key: ObjectKey = Field(description="8-bit PNG for viewing.")
    display_sha256: Sha256
    training_key: ObjectKey = Field(description="16-bit PNG of modality values.")
    training_sha256: Sha256
    training_offset: int = Field(default=0, description="Subtract from training PNG values to get modality values.")
    dicom_key: ObjectKey | None = Field(
        default=None, description="The de-identified DICOM instance (for DICOM SEG exports)."
    )
    quarantined: bool = Field(default=False, description="True: never offered for annotation.")


@register
class IngestJobCompleted(Message):
    """Every instance of one ingest submission has an outcome."""

    TYPE: ClassVar[str] = "ingest-job.completed.v1"
    KIND: ClassVar[str] = "event"

    project: ProjectName
    job_id: uuid.UUID
    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    quarantined: int = Field(ge=0)
    refused: int = Field(ge=0)
