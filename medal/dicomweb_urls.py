"""Which DICOMweb URLs medal may call: the server-side request targets allowed by ``MEDAL_DICOMWEB_ALLOWED_URLS``.

Ingest pulls from and pushes to a PACS, annotation sends SEG objects to one; both check a caller's URL
here before any request, so a caller cannot make medal reach an arbitrary address (SSRF).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit


class UrlRefused(ValueError):
    """``problem``: ``malformed`` (not a plain http(s) base URL) or ``not-allowed`` (under no allowed base)."""

    def __init__(self, problem: Literal["malformed", "not-allowed"]) -> None:
        super().__init__(problem)
        self.problem = problem


def _normal(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url.strip())
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def allowed_base(url: str, allowed: Iterable[str]) -> str:
    """``url`` without a trailing slash when it lies under one of ``allowed``; else :class:`UrlRefused`."""
    try:
        scheme, host, port, path = _normal(url)
    except ValueError:  # a port that is not a number, or out of range
        raise UrlRefused("malformed") from None
    if scheme not in ("http", "https") or not host or urlsplit(url).username or "?" in url or "#" in url:
        raise UrlRefused("malformed")
    for entry in allowed:
        e_scheme, e_host, e_port, e_path = _normal(entry)
        if (scheme, host, port) == (e_scheme, e_host, e_port) and (path == e_path or path.startswith(e_path + "/")):
            return url.strip().rstrip("/")
    raise UrlRefused("not-allowed")
