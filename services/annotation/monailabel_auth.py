"""MONAI Label's sign-in routes on a medal project: ``/auth/``, ``/auth/token``, ``/auth/token/valid``.

Mounted without authentication (a plugin asks them before it has a token). ``/auth/`` says whether sign-in
is on and with which public client; ``/auth/token`` passes a form-posted username and password to the
identity provider's token endpoint with the password grant (Keycloak's "direct access grants"), failed
attempts counting against the caller's address like any failed sign-in; ``/auth/token/valid`` answers 200
when the presented token identifies a caller (401 otherwise).
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request

from medal.access import Caller, identify_caller
from medal.access.identify import Unauthenticated, access_context, client_address
from medal.dependencies import PlatformDep, ProjectPath
from medal.errors import ApiError

router = APIRouter(prefix="/monailabel/{project}/auth", tags=["monai-label"])


@router.get("/", summary="MONAI Label: is sign-in enabled (and with which client)")
async def auth_enabled(project: ProjectPath, platform: PlatformDep) -> dict[str, Any]:
    validator = access_context(platform).validator
    return {
        "enabled": validator is not None,
        "client_id": platform.settings.oidc_client_id if validator is not None else None,
        "realm": validator.issuer if validator is not None else None,
    }


@router.post("/token", summary="MONAI Label: a token for a username and password (password grant)")
async def access_token(project: ProjectPath, request: Request, platform: PlatformDep) -> dict[str, Any]:
    context = access_context(platform)
    if context.validator is None:
        return {"access_token": None, "token_type": None}
    address = client_address(request)
    wait = context.limiter.retry_after(address)
    if wait is not None:
        raise ApiError(
            429,
            "too-many-requests",
            f"too many failed sign-ins from this address: retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    async with request.form(max_files=0, max_fields=10) as form:
        username, password = form.get("username"), form.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise ApiError(422, "invalid-request", "post username and password as a form (OAuth2 password flow)")
    endpoint = (await context.validator.discovery()).get("token_endpoint")
    if not isinstance(endpoint, str):
        raise ApiError(503, "provider-unavailable", "the identity provider names no token endpoint")
    grant = {
        "grant_type": "password",
        "client_id": platform.settings.oidc_client_id or "",
        "username": username,
        "password": password,
        "scope": "openid",
        "resource": context.validator.audience,
    }
    try:
        async with httpx.AsyncClient(timeout=platform.settings.oidc_http_timeout_seconds) as client:
            answer = await client.post(endpoint, data=grant, headers={"accept": "application/json"})
    except httpx.HTTPError:
        raise ApiError(503, "provider-unavailable", "the identity provider cannot be reached") from None
    if answer.status_code != 200:
        context.limiter.failed(address)
        error = Unauthenticated("invalid-credentials", "the identity provider refused the username or password")
        raise error
    context.limiter.forget(address)
    token: dict[str, Any] = answer.json()
    return token


@router.get("/token/valid", summary="MONAI Label: is the presented token valid (200) or not (401)")
async def valid_token(project: ProjectPath, caller: Annotated[Caller, Depends(identify_caller)]) -> dict[str, Any]:
    roles = sorted({role.label for role in caller.roles.values()})
    return {"username": caller.id, "email": None, "name": caller.display_name, "roles": roles}
