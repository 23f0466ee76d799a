"""The one base of every refusal a use case can make, whichever edge it reaches.

A use case raises a :class:`DomainError` subclass; the HTTP edge maps it once to its ``status`` and
``code`` (``medal.errors``), the bus edge dead-letters it at once when ``permanent`` (the message can
never succeed) or retries it with back-off when not (something it needs has not arrived yet).
Messages must never contain PHI: they are shown to callers and written to logs.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A refusal the caller can act on: ``code`` is stable, ``message`` says what to do."""

    status: ClassVar[int] = 422
    code: ClassVar[str] = "refused"
    #: On the bus: True → dead-letter at once; False → retry with back-off (it may succeed later).
    permanent: ClassVar[bool] = True

    def __init_subclass__(cls, *, code: str | None = None, **kwargs: Any) -> None:
        """``class ProjectNotFound(NotFound, code="project-not-found"): ...`` names a refusal in one line."""
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotFound(DomainError):
    status = 404
    code = "not-found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Invalid(DomainError):
    status = 422
    code = "invalid"


class PreconditionFailed(DomainError):
    status = 412
    code = "precondition-failed"


class PreconditionRequired(DomainError):
    status = 428
    code = "precondition-required"


class NotYetAvailable(DomainError):
    """Something this depends on has not arrived yet (an event racing another): retry later."""

    status = 409
    code = "not-yet-available"
    permanent = False


class Unavailable(DomainError):
    """A dependency (another service, storage) cannot answer now."""

    status = 503
    code = "unavailable"
    permanent = False
