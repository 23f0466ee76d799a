"""STOW-RS to an archive (a research PACS, or the clinical one): SEG objects out, one outcome per object.

The archive's base URL is a server-side request target: it must lie under an entry of
``MEDAL_DICOMWEB_ALLOWED_URLS`` (the same allow-list as ingest's pulls and pushes), and redirects are never
followed. Objects go in requests of ``MEDAL_STOW_BATCH_OBJECTS`` parts, each body streamed part by part. A
request that cannot be completed (the archive is down, too slow, answers 5xx or 429) is sent again with
back-off, up to ``MEDAL_DICOMWEB_RETRIES`` attempts: the objects keep their UIDs, so a re-sent one replaces
itself. The archive's answer (ReferencedSOPSequence, FailedSOPSequence) decides each object's outcome; an
object the archive does not acknowledge is reported failed, never assumed stored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from medal import dicomweb_urls
from medal.domain_errors import DomainError
from medal.settings import Settings

DICOM_JSON = "application/dicom+json"
RELATED_DICOM = 'multipart/related; type="application/dicom"'
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Failure reasons of PS3.18 (0008,1197) worth a word.
FAILURE_REASONS = {0xA700: "out of resources", 0xA900: "data set does not match SOP class", 0xC000: "cannot understand"}


class ArchiveNotAllowed(DomainError, code="dicomweb-url-not-allowed"):
    """An archive URL outside ``MEDAL_DICOMWEB_ALLOWED_URLS`` (annotation would send to it: SSRF)."""

    status = 403


def allowed_archive(settings: Settings, url: str) -> str:
    """``url`` without a trailing slash when it lies under an allowed base; else :class:`ArchiveNotAllowed`."""
    try:
        return dicomweb_urls.allowed_base(url, settings.dicomweb_allowed_urls)
    except dicomweb_urls.UrlRefused as refused:
        if refused.problem == "malformed":
            raise ArchiveNotAllowed("the archive URL must be a plain http(s) DICOMweb base URL") from None
        raise ArchiveNotAllowed(
            "this archive URL is not in MEDAL_DICOMWEB_ALLOWED_URLS (medal sends only to those)"
        ) from None


@dataclass(frozen=True, repr=False)
class Part:
    """One object to store: its SOP Instance UID and Part-10 bytes."""

    sop_uid: str
    data: bytes


@dataclass(frozen=True)
class Outcome:
    sop_uid: str
    stored: bool
    code: str | None = None
    reason: str | None = None
    attempts: int = 1


def parse_answer(body: Any) -> tuple[set[str], dict[str, int]]:
    """(acknowledged SOP UIDs, refused SOP UID → failure reason) of a STOW-RS answer (PS3.18 10.5.3)."""
    stored: set[str] = set()
    failed: dict[str, int] = {}
    if isinstance(body, dict):
        for item in (body.get("00081199") or {}).get("Value") or []:
            stored.update((item.get("00081155") or {}).get("Value") or [])
        for item in (body.get("00081198") or {}).get("Value") or []:
            reason = ((item.get("00081197") or {}).get("Value") or [0])[0]
            for uid in (item.get("00081155") or {}).get("Value") or []:
                failed[uid] = int(reason) if isinstance(reason, int | str) and str(reason).isdigit() else 0
    return stored, failed


def _refused_reason(code: int) -> str:
    known = FAILURE_REASONS.get(code)
    return f"the archive refused it (failure reason 0x{code:04X}{', ' + known if known else ''})"


class Archive:
    """One STOW-RS target for the duration of an export."""

    def __init__(self, settings: Settings, url: str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base = allowed_archive(settings, url)
        self.attempts = settings.dicomweb_retries
        self.client = httpx.AsyncClient(
            timeout=settings.dicomweb_timeout_seconds, follow_redirects=False, transport=transport
        )

    async def __aenter__(self) -> Archive:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.client.aclose()

    async def _post(self, parts: Sequence[Part]) -> httpx.Response:
        boundary = uuid.uuid4().hex

        async def body() -> AsyncIterator[bytes]:
            for part in parts:
                yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                yield part.data
                yield b"\r\n"
            yield f"--{boundary}--\r\n".encode()

        headers = {"content-type": f'{RELATED_DICOM}; boundary="{boundary}"', "accept": DICOM_JSON}
        return await self.client.post(f"{self.base}/studies", content=body(), headers=headers)

    async def store(self, parts: Sequence[Part]) -> list[Outcome]:
        """Send ``parts`` in one request (again on a retryable failure); an outcome per part, in order."""
        code, reason = "pacs_unreachable", "the archive cannot be reached"
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 8))
            try:
                response = await self._post(parts)
            except httpx.TimeoutException:
                code, reason = "pacs_timeout", "the archive did not answer in time"
                continue
            except httpx.HTTPError as exc:
                code, reason = "pacs_unreachable", f"the archive cannot be reached ({type(exc).__name__})"
                continue
            if response.status_code in RETRY_STATUSES:
                code, reason = "pacs_error", f"the archive answered HTTP {response.status_code}"
                continue
            return self._outcomes(parts, response, attempt)
        unsure = f"{reason} after {self.attempts} attempts; the archive may hold some of them: export again to resend"
        return [Outcome(p.sop_uid, False, code, unsure, self.attempts) for p in parts]

    def _outcomes(self, parts: Sequence[Part], response: httpx.Response, attempt: int) -> list[Outcome]:
        status = response.status_code
        if status not in (200, 202, 409):
            reason = f"the archive answered HTTP {status}"
            return [Outcome(p.sop_uid, False, "archive_refused", reason, attempt) for p in parts]
        try:
            stored, refused = parse_answer(response.json())
        except ValueError:
            stored, refused = set(), {}
        outcomes = []
        for part in parts:
            if part.sop_uid in refused:
                reason = _refused_reason(refused[part.sop_uid])
                outcomes.append(Outcome(part.sop_uid, False, "archive_refused", reason, attempt))
            elif part.sop_uid in stored or (status == 200 and not stored and not refused):
                outcomes.append(Outcome(part.sop_uid, True, attempts=attempt))
            else:
                reason = f"the archive's answer (HTTP {status}) does not acknowledge it"
                outcomes.append(Outcome(part.sop_uid, False, "not_acknowledged", reason, attempt))
        return outcomes
