"""The refusals of the inference service, each with its stable code (mapped once at the HTTP and bus edges)."""

from __future__ import annotations

from medal.domain_errors import Conflict, Invalid, NotFound, NotYetAvailable


class ImageNotFound(NotFound):
    code = "image-not-found"


class ModelNotFound(NotFound):
    code = "model-not-found"


class NoModel(Conflict):
    """The project has no current model version yet (the trainer has promoted none)."""

    code = "no-model"


class ModelVersionNotKnown(NotYetAvailable):
    """A promotion came before the model.trained.v2 of the version it names: retried until that is in."""

    code = "model-version-not-known"


class NothingReadable(Invalid):
    """No image of an auto-label shard could be read: the shard can never succeed."""

    code = "no-readable-image"
