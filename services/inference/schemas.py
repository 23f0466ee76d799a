"""Request and response models of the inference API."""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from proto.types import Id

if TYPE_CHECKING:
    from services.inference.prediction import PredictedMask


class PredictRequest(BaseModel):
    """Exactly one of ``image_id`` (an ingested image) or ``session_key`` (a MONAI Label session's image)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    image_id: uuid.UUID | None = None
    session_key: str | None = Field(
        default=None,
        pattern=r"^monailabel-sessions/[a-z0-9][a-z0-9-]{0,62}/[0-9a-f-]{36}/image\.png$",
        description="The 16-bit PNG of a MONAI Label session (annotation's /session), predicted without storing.",
    )
    model_version_id: uuid.UUID | None = Field(default=None, description="Default: the project's current model.")

    @model_validator(mode="after")
    def _one_image(self) -> PredictRequest:
        if (self.image_id is None) == (self.session_key is None):
            raise ValueError("give exactly one of image_id and session_key")
        return self


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
