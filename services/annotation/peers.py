"""Where annotation finds the services it calls over HTTP (inference, trainer, ingest), and how it calls them.

Each address is a setting (``MEDAL_INFERENCE_URL``, ``MEDAL_TRAINER_URL``, ``MEDAL_INGEST_URL``). Unset,
embedded mode (every service in one process, one port) uses the origin of the request being answered;
distributed mode answers 503 ``service-url-not-configured`` instead of calling itself, where that service
does not run. The caller's credential is passed on, so the other service decides what the caller may do.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import Request

from medal.domain_errors import DomainError, Unavailable
from medal.platform import Platform

FORWARDED_HEADERS = ("x-api-key", "authorization", "x-request-id")


class ServiceUrlNotConfigured(Unavailable, code="service-url-not-configured"):
    """Distributed mode without the other service's address: a deployment error, named, never a self-call."""

    def __init__(self, service: str) -> None:
        setting = f"MEDAL_{service.upper()}_URL"
        super().__init__(f"{setting} is not set: in distributed mode annotation cannot reach the {service} service")


class ServiceUnavailable(Unavailable, code="service-unavailable"):
    def __init__(self, service: str, base: str) -> None:
        super().__init__(f"the {service} service at {base} cannot be reached")


class Answer(Protocol):
    """An HTTP answer (httpx.Response): the callers hold the client, so this module makes no calls itself."""

    status_code: int

    def json(self) -> Any: ...


def service_url(request: Request, platform: Platform, service: str, configured: str | None) -> str:
    """The other service's base URL: ``configured`` (its setting), else this process's origin (embedded only)."""
    if configured:
        return configured.rstrip("/")
    if platform.settings.distributed:
        raise ServiceUrlNotConfigured(service)
    return f"{request.url.scheme}://{request.url.netloc}"


def forwarded(request: Request) -> dict[str, str]:
    """The caller's credential and request id, to pass on."""
    return {name: value for name in FORWARDED_HEADERS if (value := request.headers.get(name))}


def error_of(answer: Answer) -> tuple[str, str] | None:
    """(code, message) of a medal JSON error answer, or None when it is not one."""
    try:
        error: Any = answer.json()["error"]
        return str(error["code"]), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError):
        return None


def is_missing_service(answer: Answer) -> bool:
    """A 404 for the route itself (no such service mounted at that address), not for something it names."""
    if answer.status_code != 404:
        return False
    error = error_of(answer)
    return error is None or error == ("not-found", "Not Found")


class PassedOn(DomainError):
    """The other service's refusal, passed on with its status and code (its message never holds PHI)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status  # type: ignore[misc]
        self.code = code  # type: ignore[misc]


def refusal(service: str, base: str, answer: Answer) -> DomainError:
    """What to raise for a non-2xx answer of ``service``."""
    if is_missing_service(answer):
        return ServiceUnavailable(service, base)
    error = error_of(answer)
    if error is None or answer.status_code >= 500:
        status = 503 if answer.status_code in (502, 503, 504) else 502
        code, message = error or (f"{service}-failed", f"the {service} service answered HTTP {answer.status_code}")
        return PassedOn(status, code, message)
    return PassedOn(answer.status_code, *error)
