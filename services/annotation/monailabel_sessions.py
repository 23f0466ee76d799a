"""MONAI Label sessions: an image uploaded for inference only, never added to the project.

``PUT /session/`` takes the image (PNG, single-slice NIfTI or DICOM; at most
``MEDAL_MONAILABEL_SESSION_MAX_BYTES``) and keeps only its pixels, as a 16-bit PNG in object storage under
``monailabel-sessions/<project>/<id>/`` with a small JSON record: no DICOM header (no PHI) is kept, and
the session ends after its ``expiry`` (capped by ``MEDAL_MONAILABEL_SESSION_MAX_SECONDS``). Any API replica
can serve it; expired sessions are removed when seen and whenever a new one is made.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from medal.domain_errors import DomainError, Invalid, NotFound
from medal.platform import Platform
from medal.storage import ObjectNotFound, ObjectStore

PREFIX = "monailabel-sessions"
DEFAULT_EXPIRY = 3600


class SessionNotFound(NotFound, code="session-not-found"):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"Session ({session_id}) Not Found")


class SessionTooLarge(DomainError, code="session-too-large"):
    status = 413


class UnreadableSessionImage(Invalid, code="unreadable-session-image"):
    pass


@dataclass(frozen=True)
class Session:
    id: str
    project: str
    name: str
    width: int
    height: int
    create_ts: int
    last_access_ts: int
    expiry: int

    @property
    def image_key(self) -> str:
        return f"{PREFIX}/{self.project}/{self.id}/image.png"

    @property
    def record_key(self) -> str:
        return f"{PREFIX}/{self.project}/{self.id}/session.json"

    def expired(self, now: float) -> bool:
        return now > self.last_access_ts + self.expiry

    def to_json(self) -> dict[str, Any]:
        """MONAI Label's ``SessionInfo.to_json()`` keys (``path`` and ``image`` name the stored objects)."""
        return {
            "name": self.name,
            "path": f"{PREFIX}/{self.project}/{self.id}",
            "image": self.image_key,
            "meta": {"width": self.width, "height": self.height, "inference_only": True},
            "create_ts": self.create_ts,
            "last_access_ts": self.last_access_ts,
            "expiry": self.expiry,
        }


def pixels_of(data: bytes, filename: str) -> np.ndarray:
    """A 2D array of the upload's pixels (PNG/JPEG, single-slice NIfTI, or DICOM's pixel data only)."""
    lower = filename.lower()
    try:
        if lower.endswith((".nii", ".nii.gz")) or data[:2] == b"\x1f\x8b":
            import nibabel as nib

            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            array = np.squeeze(np.asarray(nib.Nifti1Image.from_stream(io.BytesIO(raw)).dataobj)).T
        elif data[128:132] == b"DICM" or lower.endswith(".dcm"):
            import pydicom

            array = np.squeeze(pydicom.dcmread(io.BytesIO(data)).pixel_array)
        else:
            array = np.asarray(Image.open(io.BytesIO(data)).convert("I;16"))
    except Exception as exc:  # every reader raises its own types for a broken file
        raise UnreadableSessionImage(f"the session image cannot be read ({type(exc).__name__})") from None
    if array.ndim != 2 or min(array.shape) < 1:
        raise UnreadableSessionImage(f"a session image must be one 2D slice, it has shape {array.shape}")
    return array


def _png16(array: np.ndarray) -> bytes:
    values = array.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = np.zeros(values.shape) if high <= low else (values - low) / (high - low) * 65535
    buffer = io.BytesIO()
    Image.fromarray(scaled.astype(np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def _record(store: ObjectStore, session: Session, *, replace: bool = False) -> None:
    if replace:  # keys are write-once: a new access time replaces the record
        store.delete(session.record_key)
    store.put(session.record_key, json.dumps(session.__dict__).encode(), "application/json")


def _load(store: ObjectStore, project: str, session_id: str) -> Session | None:
    try:
        uuid.UUID(session_id)
        raw = store.get(f"{PREFIX}/{project}/{session_id}/session.json")
    except (ValueError, ObjectNotFound):
        return None
    return Session(**json.loads(raw))


def _remove(store: ObjectStore, session: Session) -> None:
    for key in (session.image_key, session.record_key):
        store.delete(key)


def _sweep(store: ObjectStore, project: str, now: float) -> None:
    for key in list(store.keys(f"{PREFIX}/{project}/")):
        if key.endswith("/session.json"):
            session = _load(store, project, key.split("/")[-2])
            if session is not None and session.expired(now):
                _remove(store, session)


async def create(platform: Platform, project: str, filename: str, data: bytes, expiry: int) -> Session:
    settings = platform.settings
    if len(data) > settings.monailabel_session_max_bytes:
        raise SessionTooLarge(f"a session image may hold at most {settings.monailabel_session_max_bytes} bytes")
    lifetime = min(expiry if expiry > 0 else DEFAULT_EXPIRY, settings.monailabel_session_max_seconds)

    def store_it() -> Session:
        pixels = pixels_of(data, filename)
        now = int(time.time())
        _sweep(platform.store, project, now)
        session = Session(
            str(uuid.uuid4()), project, filename[-200:], int(pixels.shape[1]), int(pixels.shape[0]), now, now, lifetime
        )
        platform.store.put(session.image_key, _png16(pixels), "image/png")
        _record(platform.store, session)
        return session

    return await asyncio.to_thread(store_it)


async def get(platform: Platform, project: str, session_id: str, *, update_ts: bool = False) -> Session:
    def load() -> Session:
        session = _load(platform.store, project, session_id)
        now = time.time()
        if session is None or session.expired(now):
            if session is not None:
                _remove(platform.store, session)
            raise SessionNotFound(session_id)
        if update_ts:
            session = Session(**{**session.__dict__, "last_access_ts": int(now)})
            _record(platform.store, session, replace=True)
        return session

    return await asyncio.to_thread(load)


async def image(platform: Platform, session: Session) -> bytes:
    try:
        return await asyncio.to_thread(platform.store.get, session.image_key)
    except ObjectNotFound:
        raise SessionNotFound(session.id) from None


async def remove(platform: Platform, project: str, session_id: str) -> Session:
    session = await get(platform, project, session_id)
    await asyncio.to_thread(_remove, platform.store, session)
    return session
