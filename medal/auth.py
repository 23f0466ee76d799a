"""Who is calling: the one dependency every route passes through (access control goes here)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from medal.errors import ApiError


@dataclass(frozen=True)
class Caller:
    id: str
    kind: Literal["local", "api-key"]


LOCAL_USER = Caller(id="local", kind="local")


async def identify_caller(request: Request) -> Caller:
    """With no API keys configured every caller is the local user; otherwise a valid key is required."""
    settings = request.app.state.platform.settings
    if not settings.api_keys:
        caller = LOCAL_USER
    else:
        supplied = request.headers.get("x-api-key", "")
        authorization = request.headers.get("authorization", "")
        if not supplied and authorization.lower().startswith("bearer "):
            supplied = authorization[7:].strip()
        if not supplied:
            raise ApiError(401, "unauthenticated", "an API key is required (X-API-Key or Authorization: Bearer)")
        matched = [
            key for key in settings.api_keys if hmac.compare_digest(key.get_secret_value().encode(), supplied.encode())
        ]
        if not matched:
            raise ApiError(401, "unauthenticated", "the API key is not valid")
        caller = Caller(id="key-" + hashlib.sha256(supplied.encode()).hexdigest()[:12], kind="api-key")
    request.state.caller = caller
    return caller
