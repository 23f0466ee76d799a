"""Request and response models of the inference API."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

PROJECT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_id: uuid.UUID
    model_version_id: uuid.UUID | None = Field(default=None, description="Default: the project's current model.")


class PredictionOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model_version_id: str
    version: int
    confidence: float = Field(description="Mean over pixels of the highest class probability.")
    width: int
    height: int
    mask_png_base64: str = Field(description="8-bit PNG of class indices at the image's size.")
