"""The refusals of the ingest use cases, each with the stable code the API has always answered."""

from __future__ import annotations

from medal.domain_errors import Invalid, NotFound


class JobNotFound(NotFound):
    code = "job-not-found"


class InstanceNotFound(NotFound):
    code = "instance-not-found"


class InvalidWindow(Invalid):
    code = "invalid-window"


class InstanceRefused(Invalid):
    """A submission of one instance that was refused (its job records why, see ``details``)."""

    code = "refused-instance"
