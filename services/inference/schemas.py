"""Request and response models of the inference API."""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from proto.types import Id

if TYPE_CHECKING:
    from services.inference.prediction import PredictedMask


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    image_id: uuid.UUID
    model_version_id: uuid.UUID | None = Field(default=None, description="Default: the project's current model.")


class PredictionOut(BaseModel):
    """A pre-annotation for the UI: one image's predicted mask."""

    model_config = ConfigDict(protected_namespaces=(), frozen=True)
    model_version_id: Id
    version: int
    confidence: float = Field(description="Mean over pixels of the highest class probability.")
    width: int
    height: int
    mask_png_base64: str = Field(description="8-bit PNG of class indices at the image's size.")

    @classmethod
    def of(cls, model: Any, mask: PredictedMask) -> PredictionOut:
        """From a model version's row and the mask it predicted."""
        return cls(
            model_version_id=model.id,
            version=model.version,
            confidence=mask.confidence,
            width=mask.width,
            height=mask.height,
            mask_png_base64=base64.b64encode(mask.png).decode("ascii"),
        )
