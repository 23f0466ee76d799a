"""The one dependency every route passes through: who is calling, and with which roles.

A credential comes as ``X-API-Key: …`` or ``Authorization: Bearer …`` and is one of
- a key of ``MEDAL_API_KEYS``: a platform admin (first start, automation);
- a project key ``medal_<id>_<secret>`` (``medal keys create``): its project and role;
- an access token of the OpenID Connect provider (``MEDAL_OIDC_ISSUER``): the person or client it names,
  with the roles of its roles claim and of the membership table.
With no provider and no keys configured every caller is the local user (`medal up` on a laptop), unless
it presents a project key, which then counts as that key. A refused credential answers 401 with a body
that says why; a client that fails too often answers 429 with Retry-After. No credential is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from starlette.exceptions import HTTPException

from medal.access.caller import LOCAL_USER, Caller, current_caller, merge_roles
from medal.access.keys import KEY_PREFIX, check_key
from medal.access.members import roles_of
from medal.access.oidc import OidcValidator, TokenRejected, looks_like_jwt
from medal.access.ratelimit import FailureLimiter
from medal.errors import ApiError
from medal.settings import Settings

if TYPE_CHECKING:
    from medal.platform import Platform

log = logging.getLogger("medal.access")

MESSAGES = {
    "missing": "credentials are required: X-API-Key, or Authorization: Bearer with a key or an access token",
    "invalid-key": "the API key is not valid",
    "malformed-key": "the API key is not well-formed (medal_<id>_<secret>)",
    "revoked-key": "the API key has been revoked",
    "unknown-role": "the credential carries a role medal does not know",
    "no-identity-provider": "access tokens are not accepted: no identity provider is configured",
}


class Unauthenticated(ApiError):
    """401 with ``details: [{"reason": …}]`` naming why (missing, expired, bad-signature, revoked-key …)."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(
            401, "unauthenticated", message or MESSAGES.get(reason, "not authenticated"), [{"reason": reason}]
        )
        self.reason = reason
        error = "invalid_request" if reason == "missing" else "invalid_token"
        #: For a handler that sets response headers (RFC 6750).
        self.headers = {"WWW-Authenticate": f'Bearer realm="medal", error="{error}"'}


@dataclass
class AccessContext:
    """What one process keeps for authentication: the token validator (with its JWKS cache) and the limiter."""

    settings: Settings
    limiter: FailureLimiter
    validator: OidcValidator | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings) -> AccessContext:
        validator = OidcValidator(settings) if settings.oidc_issuer and settings.oidc_audience else None
        limiter = FailureLimiter(burst=settings.auth_failures_burst, per_minute=settings.auth_failures_per_minute)
        return cls(settings, limiter, validator)


_contexts: dict[int, AccessContext] = {}


def access_context(platform: Platform) -> AccessContext:
    """The process's :class:`AccessContext` of ``platform`` (one per platform, shared by every mounted service)."""
    key = id(platform)
    context = _contexts.get(key)
    if context is None or context.settings is not platform.settings:
        context = AccessContext.build(platform.settings)
        _contexts[key] = context
        weakref.finalize(platform, _contexts.pop, key, None)
    return context


def presented_credential(request: Request) -> str:
    supplied = request.headers.get("x-api-key", "").strip()
    authorization = request.headers.get("authorization", "")
    if not supplied and authorization[:7].lower() == "bearer ":
        supplied = authorization[7:].strip()
    return supplied


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def platform_key_caller(settings: Settings, credential: str) -> Caller | None:
    matched = False
    for key in settings.api_keys:  # every key compared, in constant time each
        matched |= hmac.compare_digest(key.get_secret_value().encode(), credential.encode())
    if not matched:
        return None
    digest = hashlib.sha256(credential.encode()).hexdigest()[:12]
    return Caller(id=f"key-{digest}", kind="platform-key", name="platform key", platform_admin=True)


async def authenticate(platform: Platform, credential: str) -> Caller:
    """The caller a credential proves; :class:`Unauthenticated` when it proves nothing."""
    settings = platform.settings
    context = access_context(platform)
    if not credential:
        if not settings.authentication_configured:
            return LOCAL_USER
        raise Unauthenticated("missing")
    caller = platform_key_caller(settings, credential)
    if caller is not None:
        return caller
    if credential.startswith(KEY_PREFIX):
        async with platform.db.begin() as conn:
            checked = await check_key(conn, credential)
        if checked.key is None:
            raise Unauthenticated(checked.reason or "invalid-key")
        key = checked.key
        return Caller(
            id=f"key-{key.id}", kind="api-key", name=key.label or f"key {key.id}", roles={key.project: key.role}
        )
    if not settings.authentication_configured:
        return LOCAL_USER  # the open laptop mode ignores anything but a project key
    if looks_like_jwt(credential):
        if context.validator is None:
            raise Unauthenticated("no-identity-provider")
        try:
            identity = await context.validator.validate(credential)
        except TokenRejected as exc:
            raise Unauthenticated(exc.reason, exc.message) from None
        async with platform.db.connect() as conn:
            granted = await roles_of(conn, identity.subject)
        return Caller(
            id=identity.subject,
            kind="oidc",
            name=identity.name,
            roles=merge_roles(identity.roles, granted),
            platform_admin=identity.platform_admin,
        )
    raise Unauthenticated("invalid-key")


async def identify_caller(request: Request) -> Caller:
    """FastAPI dependency: the authenticated :class:`Caller` (also kept as ``request.state.caller``)."""
    platform: Platform = request.app.state.platform
    context = access_context(platform)
    credential = presented_credential(request)
    address = client_address(request)
    if credential or platform.settings.authentication_configured:
        wait = context.limiter.retry_after(address)
        if wait is not None:
            raise HTTPException(
                429,
                f"too many failed sign-ins from this address: retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
    try:
        caller = await authenticate(platform, credential)
    except Unauthenticated as exc:
        if exc.reason != "missing":  # a page loaded before sign-in is no guess
            context.limiter.failed(address)
        log.info("refused a caller from %s: %s", address, exc.reason)  # the reason only, never the credential
        raise
    context.limiter.forget(address)
    request.state.caller = caller
    current_caller.set(caller)
    return caller
