"""Access tokens of an OpenID Connect provider: JWTs checked against its discovery document and JWKS.

Checked: the signature with a key of the provider's JWKS chosen by ``kid`` (an unknown ``kid`` refetches
the JWKS, at most once per ``oidc_jwks_min_refresh_seconds``, so a rotated key works at once and a flood
of forged ``kid`` values costs the provider nothing), the algorithm (only the configured asymmetric
ones: never ``none`` nor HS*), issuer, audience, expiry, not-before and issued-at with a small leeway.
Nothing here logs or echoes a token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from medal.access.roles import PLATFORM_ADMIN, Role, UnknownRole
from medal.domain_errors import Unavailable
from medal.settings import Settings

log = logging.getLogger("medal.access.oidc")


class TokenRejected(Exception):
    """An access token that is not accepted; ``reason`` is stable (the 401 body names it)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ProviderUnavailable(Unavailable):
    code = "identity-provider-unavailable"


@dataclass(frozen=True)
class TokenIdentity:
    """What a valid access token says: who, under which name, and with which roles."""

    subject: str
    name: str
    roles: Mapping[str, Role]
    platform_admin: bool
    claims: Mapping[str, Any]


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``realm_access.roles``); a claim whose own name has a dot wins."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def roles_from_claim(value: Any, prefix: str = "medal") -> tuple[dict[str, Role], bool]:
    """Project roles and platform admin from the roles claim.

    Accepted shapes: a list of names, where ``<prefix>:<project>:<role>`` grants a role in a project and
    ``<prefix>:platform-admin`` makes a platform admin (other names, e.g. Keycloak's ``offline_access``,
    are ignored); or an object ``{"<project>": "<role>"}`` (``"platform-admin": true`` too). A name in
    medal's namespace that medal does not understand raises :class:`UnknownRole`.
    """
    roles: dict[str, Role] = {}
    platform_admin = False
    if value is None:
        return roles, False
    if isinstance(value, Mapping):
        for project, role in value.items():
            if project == PLATFORM_ADMIN:
                platform_admin = platform_admin or role is True or role == PLATFORM_ADMIN
                continue
            if not isinstance(role, str) or not isinstance(project, str):
                raise UnknownRole(str(role))
            parsed = Role.parse(role)
            roles[project] = max(parsed, roles.get(project, parsed))
        return roles, platform_admin
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list):
        raise UnknownRole(type(value).__name__)
    for name in value:
        if not isinstance(name, str) or not name.startswith(prefix + ":"):
            continue
        parts = name.split(":")
        if parts[1:] == [PLATFORM_ADMIN]:
            platform_admin = True
        elif len(parts) == 3 and parts[1]:
            parsed = Role.parse(parts[2])
            roles[parts[1]] = max(parsed, roles.get(parts[1], parsed))
        else:
            raise UnknownRole(name)
    return roles, platform_admin


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and credential.startswith("ey")


class OidcValidator:
    """Validates access tokens of one provider; discovery and JWKS are fetched lazily and cached."""

    def __init__(self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not settings.oidc_issuer or not settings.oidc_audience:
            raise ValueError("MEDAL_OIDC_ISSUER and MEDAL_OIDC_AUDIENCE must both be set")
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.discovery_url = settings.oidc_discovery_url or (
            self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        )
        self.algorithms = list(settings.oidc_algorithms)
        self.roles_claim = settings.oidc_roles_claim
        self.role_prefix = settings.oidc_role_prefix
        self.leeway = settings.oidc_leeway_seconds
        self.cache_seconds = settings.oidc_jwks_cache_seconds
        self.min_refresh_seconds = settings.oidc_jwks_min_refresh_seconds
        self.timeout = settings.oidc_http_timeout_seconds
        self._transport = transport
        self._discovery: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        #: How many times the JWKS was fetched (tests and metrics).
        self.jwks_fetches = 0

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            document = await self._get_json(self.discovery_url)
            if document.get("issuer") != self.issuer or not isinstance(document.get("jwks_uri"), str):
                raise ProviderUnavailable("the identity provider's discovery document does not match MEDAL_OIDC_ISSUER")
            self._discovery = document
        return self._discovery

    async def validate(self, token: str) -> TokenIdentity:
        """The identity in ``token``; :class:`TokenRejected` (→ 401) or :class:`ProviderUnavailable` (→ 503)."""
        try:
            compact = extract_compact(token.encode("ascii"))
            header = compact.headers()
        except (JoseError, ValueError, UnicodeError, json.JSONDecodeError):
            raise TokenRejected("malformed", "the access token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise TokenRejected("algorithm-not-allowed", "the access token's signature algorithm is not accepted")
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else None)
        if key is None:
            raise TokenRejected(
                "unknown-signing-key", "the access token is signed with a key the provider does not publish"
            )
        try:
            decoded = jwt.decode(token, key, algorithms=self.algorithms)
        except BadSignatureError:
            raise TokenRejected("bad-signature", "the access token's signature is not valid") from None
        except (JoseError, ValueError):
            raise TokenRejected("malformed", "the access token could not be verified") from None
        claims = decoded.claims
        self._check_claims(claims)
        try:
            roles, platform_admin = roles_from_claim(claim_at(claims, self.roles_claim), self.role_prefix)
        except UnknownRole as exc:
            raise TokenRejected("unknown-role", f"the access token carries an {exc}") from None
        subject = str(claims["sub"])
        name = next((str(claims[c]) for c in ("name", "preferred_username", "email") if claims.get(c)), subject)
        return TokenIdentity(subject, name[:200], roles, platform_admin, claims)

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") != self.issuer:
            raise TokenRejected("wrong-issuer", "the access token was issued by another provider")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if self.audience not in audiences:
            raise TokenRejected("wrong-audience", f"the access token is not meant for {self.audience}")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255:
            raise TokenRejected("malformed", "the access token has no subject")
        registry = jwt.JWTClaimsRegistry(leeway=self.leeway, exp={"essential": True})
        try:
            registry.validate(dict(claims))
        except ExpiredTokenError:
            raise TokenRejected("expired", "the access token has expired: sign in again") from None
        except ClaimError as exc:
            claim = getattr(exc, "claim", "a claim")
            raise TokenRejected("invalid-claims", f"the access token's {claim} claim is not valid") from None

    async def _key(self, kid: str | None) -> Any:
        keys = await self._key_set(force=False)
        found = _pick(keys, kid)
        if found is None and time.monotonic() - self._fetched_at >= self.min_refresh_seconds:
            keys = await self._key_set(force=True)  # a rotated key: refetch (rate-limited)
            found = _pick(keys, kid)
        return found

    async def _key_set(self, *, force: bool) -> KeySet:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            fresh = self._keys is not None and age < self.cache_seconds
            if fresh and not (force and age >= self.min_refresh_seconds):
                assert self._keys is not None
                return self._keys
            document = await self._get_json(str((await self.discovery())["jwks_uri"]))
            try:
                keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError):
                raise ProviderUnavailable("the identity provider's JWKS could not be read") from None
            self._keys, self._fetched_at = keys, time.monotonic()
            self.jwks_fetches += 1
            return keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self._transport) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("identity provider not reachable at %s: %s", url, type(exc).__name__)
            raise ProviderUnavailable("the identity provider cannot be reached; try again shortly") from None
        if not isinstance(document, dict):
            raise ProviderUnavailable("the identity provider answered with something other than a JSON object")
        return document


def _pick(keys: KeySet, kid: str | None) -> Any:
    """The signing key with ``kid`` (or the only key when the token names none)."""
    candidates = [k for k in keys if k.get("use") in (None, "sig")]
    if kid is None:
        return candidates[0] if len(candidates) == 1 else None
    return next((k for k in candidates if k.kid == kid), None)
