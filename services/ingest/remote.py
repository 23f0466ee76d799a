"""A remote PACS over DICOMweb: QIDO-RS to find, WADO-RS to retrieve, STOW-RS to send.

The base URL is a server-side request target: :func:`allowed_base` accepts only URLs under an entry
of ``MEDAL_DICOMWEB_ALLOWED_URLS`` (so a caller cannot make ingest fetch arbitrary addresses), and
redirects are never followed. Every request has a timeout and is retried with back-off on
connection errors, timeouts and 5xx/429 answers. A retrieved instance is streamed into a spooled
temporary file under a byte limit and handed on only once its multipart body ended properly:
nothing half-received is ever ingested.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from medal import dicomweb_urls
from medal.settings import Settings
from services.ingest.errors import PeerNotAllowed
from services.ingest.multipart import SpooledParts, parser_for, related_boundary
from services.ingest.parsing import RefusedInstance

DICOM_JSON = "application/dicom+json"
RELATED_DICOM = 'multipart/related; type="application/dicom"'
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def allowed_base(settings: Settings, url: str) -> str:
    """``url`` without a trailing slash if it lies under an allowed base; else :class:`PeerNotAllowed`."""
    try:
        return dicomweb_urls.allowed_base(url, settings.dicomweb_allowed_urls)
    except dicomweb_urls.UrlRefused as refused:
        if refused.problem == "malformed":
            raise PeerNotAllowed("the DICOMweb URL must be a plain http(s) base URL") from None
        raise PeerNotAllowed(
            "this DICOMweb URL is not in MEDAL_DICOMWEB_ALLOWED_URLS (ingest fetches only from those)"
        ) from None


@dataclass(frozen=True)
class SourceInstance:
    """One instance as the remote PACS lists it (its UIDs are the source's, never stored)."""

    study_uid: str
    series_uid: str
    sop_uid: str


def _value(item: Mapping[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


class RemoteError(Exception):
    """A remote request failed for good; ``code`` names why, the message quotes no UID."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def refusal(self) -> RefusedInstance:
        return RefusedInstance(self.code, self.message)


class Remote:
    """One DICOMweb peer for the duration of a pull or push."""

    def __init__(
        self, settings: Settings, base: str, *, transport: httpx.AsyncBaseTransport | None = None, headers: Any = None
    ) -> None:
        self.base = allowed_base(settings, base)
        self.retries = settings.dicomweb_retries
        self.client = httpx.AsyncClient(
            timeout=settings.dicomweb_timeout_seconds, follow_redirects=False, transport=transport, headers=headers
        )

    async def __aenter__(self) -> Remote:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.client.aclose()

    async def _attempts(self) -> AsyncIterator[int]:
        for attempt in range(self.retries):
            if attempt:
                await asyncio.sleep(min(0.5 * 2**attempt, 8))
            yield attempt

    async def _get_json(self, path: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        failure = RemoteError("pacs_unreachable", "the PACS cannot be reached")
        async for _attempt in self._attempts():
            try:
                response = await self.client.get(f"{self.base}{path}", params=params, headers={"accept": DICOM_JSON})
            except httpx.TimeoutException:
                failure = RemoteError("pacs_timeout", "the PACS did not answer in time")
                continue
            except httpx.HTTPError as exc:
                failure = RemoteError("pacs_unreachable", f"the PACS cannot be reached ({type(exc).__name__})")
                continue
            if response.status_code in RETRY_STATUSES:
                failure = RemoteError("pacs_error", f"the PACS answered HTTP {response.status_code}")
                continue
            if response.status_code == 204:
                return []
            if response.status_code != 200:
                raise RemoteError("pacs_refused", f"the PACS answered HTTP {response.status_code} to a query")
            try:
                body = response.json()
            except ValueError:
                raise RemoteError("pacs_bad_answer", "the PACS answered a query with something not JSON") from None
            if not isinstance(body, list):
                raise RemoteError("pacs_bad_answer", "the PACS answered a query with something not a list")
            return [item for item in body if isinstance(item, dict)]
        raise failure

    async def find_studies(self, query: Mapping[str, str], limit: int) -> list[str]:
        found = await self._get_json("/studies", {**query, "limit": str(limit), "includefield": "0020000D"})
        return [uid for uid in (_value(item, "0020000D") for item in found) if uid]

    async def study_instances(self, study_uid: str) -> list[SourceInstance]:
        found = await self._get_json(f"/studies/{study_uid}/instances", {"includefield": "0020000E"})
        listed = [SourceInstance(study_uid, _value(item, "0020000E"), _value(item, "00080018")) for item in found]
        return [item for item in listed if item.series_uid and item.sop_uid]

    async def retrieve(self, item: SourceInstance, max_bytes: int) -> bytes:
        """The Part-10 bytes of one instance (WADO-RS, multipart/related; application/dicom)."""
        path = f"/studies/{item.study_uid}/series/{item.series_uid}/instances/{item.sop_uid}"
        failure = RemoteError("pacs_unreachable", "the PACS cannot be reached")
        async for _attempt in self._attempts():
            try:
                return await self._retrieve_once(path, max_bytes)
            except RemoteError as exc:
                if exc.code not in ("pacs_timeout", "pacs_unreachable", "pacs_error", "incomplete"):
                    raise
                failure = exc
        raise failure

    async def _retrieve_once(self, path: str, max_bytes: int) -> bytes:
        parts = SpooledParts()
        try:
            async with self.client.stream("GET", f"{self.base}{path}", headers={"accept": RELATED_DICOM}) as response:
                if response.status_code in RETRY_STATUSES:
                    raise RemoteError("pacs_error", f"the PACS answered HTTP {response.status_code}")
                if response.status_code == 404:
                    raise RemoteError("not_at_source", "the PACS lists this instance but does not have it (404)")
                if response.status_code != 200:
                    raise RemoteError("pacs_refused", f"the PACS answered HTTP {response.status_code}")
                media, _type, boundary = related_boundary(response.headers.get("content-type", ""))
                if media != b"multipart/related" or not boundary:
                    raise RemoteError("pacs_bad_answer", "the PACS did not answer with multipart/related")
                parser, size = parser_for(parts, boundary), 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise RemoteError("too_large", f"the instance is over the limit of {max_bytes} bytes")
                    parser.write(chunk)
                parser.finalize()
            if len(parts.files) != 1 or not parts.complete:
                raise RemoteError("incomplete", "the PACS's answer ended before the instance did")
            return parts.files[0][1].read()
        except httpx.TimeoutException:
            raise RemoteError("pacs_timeout", "the PACS did not answer in time") from None
        except httpx.HTTPError as exc:
            raise RemoteError("pacs_unreachable", f"the connection to the PACS failed ({type(exc).__name__})") from None
        finally:
            parts.close()

    async def store(self, body: AsyncIterator[bytes], boundary: str) -> httpx.Response:
        """STOW-RS one multipart body (streamed); retried only for connection failures before it was sent."""
        content_type = f'{RELATED_DICOM}; boundary="{boundary}"'
        try:
            return await self.client.post(
                f"{self.base}/studies", content=body, headers={"content-type": content_type, "accept": DICOM_JSON}
            )
        except httpx.TimeoutException:
            raise RemoteError("pacs_timeout", "the archive did not answer in time") from None
        except httpx.HTTPError as exc:
            raise RemoteError("pacs_unreachable", f"the archive cannot be reached ({type(exc).__name__})") from None
