"""The annotation service's refusals: each a domain error with a stable code, mapped once at each edge."""

from __future__ import annotations

from typing import ClassVar

from medal.domain_errors import Conflict, DomainError, Invalid, NotFound, NotYetAvailable, PreconditionFailed


class _Missing(NotFound):
    """Something named by its id or name is not there: ``template`` says what, with the name in ``{}``."""

    template: ClassVar[str] = "no {}"

    def __init__(self, named: str) -> None:
        super().__init__(self.template.format(named))


class ProjectNotFound(_Missing):
    code = "project-not-found"
    template = "no project named {}"


class ProjectExists(Conflict):
    code = "project-exists"

    def __init__(self, name: str) -> None:
        super().__init__(f"project {name} already exists")


class ImageNotFound(NotFound):
    code = "image-not-found"

    def __init__(self, image_id: str, project: str | None = None) -> None:
        super().__init__(f"no image {image_id}" + (f" in project {project}" if project else ""))


class RoundNotFound(_Missing):
    code = "round-not-found"
    template = "no round {}"


class TaskNotFound(_Missing):
    code = "task-not-found"
    template = "no task {}"


class MaskNotFound(_Missing):
    code = "mask-not-found"
    template = "image {} has no mask"


class LabelNotFound(_Missing):
    """MONAI Label's name for an image without a mask."""

    code = "label-not-found"
    template = "image {} has no label"


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
