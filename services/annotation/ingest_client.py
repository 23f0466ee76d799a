"""Annotation's calls to ingest over HTTP: original UIDs for a clinical SEG export, DICOM for MONAI Label uploads.

Ingest owns the original-to-pseudonym mapping and every instance; annotation never reads its tables.
The original UIDs come back in one answer and are kept in memory only, for the export being built:
never stored, logged, put in an error, or sent anywhere but in the SEG objects to the archive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request

from medal.platform import Platform
from services.annotation import peers

#: Ingest resolves at most this many instances per call (its MAX_RESOLVE).
RESOLVE_CHUNK = 10000


@dataclass(frozen=True, repr=False)
class OriginalRef:
    """The source UIDs a de-identified instance was made from (repr hides them: never log one)."""

    study_uid: str
    series_uid: str
    sop_uid: str

    def __repr__(self) -> str:
        return "OriginalRef(<hidden>)"


@dataclass(frozen=True)
class IngestClient:
    """Ingest's API at ``base``, called with the caller's credential (``headers``)."""

    base: str
    headers: dict[str, str]
    timeout: float = 120

    @classmethod
    def for_request(cls, request: Request, platform: Platform) -> IngestClient:
        return cls(
            peers.service_url(request, platform, "ingest", platform.settings.ingest_url), peers.forwarded(request)
        )

    async def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                answer = await client.post(f"{self.base}{path}", headers=self.headers, **kwargs)
        except httpx.HTTPError:
            raise peers.ServiceUnavailable("ingest", self.base) from None
        if answer.status_code != 200:
            raise peers.refusal("ingest", self.base, answer)
        return answer

    async def original_uids(self, project: str, sop_uids: list[str]) -> dict[str, OriginalRef]:
        """De-identified SOP UID → its originals; ingest refuses with 403, 412 or 404 (passed on)."""
        found: dict[str, OriginalRef] = {}
        for start in range(0, len(sop_uids), RESOLVE_CHUNK):
            chunk = sop_uids[start : start + RESOLVE_CHUNK]
            body = {"sop_uids": chunk, "purpose": "seg-export"}
            answer = await self._post(f"/ingest/v1/projects/{project}/original-uids", json=body)
            for item in answer.json().get("instances", []):
                found[item["sop_uid"]] = OriginalRef(
                    item["original_study_uid"], item["original_series_uid"], item["original_sop_uid"]
                )
        return found

    async def upload_instances(self, project: str, files: list[tuple[str, bytes]]) -> dict[str, Any]:
        """``POST /ingest/v1/projects/{p}/instances`` (DICOM Part-10 files): ingest's per-file report."""
        parts = [("files", (name, data, "application/dicom")) for name, data in files]
        answer = await self._post(f"/ingest/v1/projects/{project}/instances", files=parts)
        report: dict[str, Any] = answer.json()
        return report
