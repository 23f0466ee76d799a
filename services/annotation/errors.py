"""The annotation service's refusals: each a domain error with a stable code, mapped once at each edge."""

from __future__ import annotations

from medal.domain_errors import Conflict, DomainError, Invalid, NotFound, NotYetAvailable, PreconditionFailed


class ProjectNotFound(NotFound):
    code = "project-not-found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no project named {name}")


class ProjectExists(Conflict):
    code = "project-exists"

    def __init__(self, name: str) -> None:
        super().__init__(f"project {name} already exists")


class ImageNotFound(NotFound):
    code = "image-not-found"

    def __init__(self, image_id: str, project: str | None = None) -> None:
        super().__init__(f"no image {image_id}" + (f" in project {project}" if project else ""))


class RoundNotFound(NotFound):
    code = "round-not-found"

    def __init__(self, round_id: str) -> None:
        super().__init__(f"no round {round_id}")


class TaskNotFound(NotFound):
    code = "task-not-found"

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id}")


class MaskNotFound(NotFound):
    code = "mask-not-found"

    def __init__(self, image_id: str) -> None:
        super().__init__(f"image {image_id} has no mask")


class LabelNotFound(NotFound):
    """MONAI Label's name for an image without a mask."""

    code = "label-not-found"

    def __init__(self, image_id: str) -> None:
        super().__init__(f"image {image_id} has no label")


class ProjectStarted(Conflict):
    code = "project-started"


class EmptyPool(Conflict):
    code = "empty-pool"


class NoLabels(Conflict):
    code = "no-labels"

    def __init__(self) -> None:
        super().__init__("the project has no labelled images: nothing to train on")


class RoundClosed(Conflict):
    code = "round-closed"


class NoOpenRound(Conflict):
    code = "no-open-round"


class RoundNotFailed(Conflict):
    """Only a round whose training failed can be retried."""

    code = "round-not-failed"


class TaskClosed(Conflict):
    code = "task-closed"


class NotYourLease(Conflict):
    code = "not-your-lease"


class LeaseExpired(Conflict):
    code = "lease-expired"


class StaleVersion(PreconditionFailed):
    code = "stale-version"

    def __init__(self) -> None:
        super().__init__("the mask changed since you loaded it: reload, then save again")


class NoModel(Conflict):
    code = "no-model"


class ModelNotRecorded(NotYetAvailable):
    """A promotion overtook the model.trained event of its version: retried until that arrives."""

    code = "model-not-recorded"

    def __init__(self, model_version_id: str) -> None:
        super().__init__(f"model version {model_version_id} is not recorded yet")


class InvalidMask(Invalid):
    """The mask cannot be used; the text names the problem."""

    code = "invalid-mask"


class UnsupportedLabel(DomainError):
    """The uploaded label file is in a format medal cannot read."""

    status = 415
    code = "unsupported-label"
