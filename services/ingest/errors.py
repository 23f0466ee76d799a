"""The refusals of the ingest use cases, each with the stable code the API has always answered."""

from __future__ import annotations

from medal.domain_errors import DomainError, Invalid, NotFound, PreconditionFailed, Unavailable


class JobNotFound(NotFound):
    code = "job-not-found"


class InstanceNotFound(NotFound):
    code = "instance-not-found"


class InvalidWindow(Invalid):
    code = "invalid-window"


class InstanceRefused(Invalid):
    """A submission of one instance that was refused (its job records why, see ``details``)."""

    code = "refused-instance"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class PeerNotAllowed(Forbidden, code="dicomweb-url-not-allowed"):
    """A remote DICOMweb URL outside ``MEDAL_DICOMWEB_ALLOWED_URLS`` (ingest would fetch it: SSRF)."""


class OriginalUidsOff(PreconditionFailed, code="original-uids-off"):
    """The project does not keep original UIDs."""


class OriginalUidsUnknown(NotFound, code="original-uid-unknown"):
    """Some instances have no original UIDs on record (ingested before the option, or not in the project)."""


class RemoteUnavailable(Unavailable, code="pacs-unavailable"):
    """The remote PACS cannot be reached or answers errors."""
