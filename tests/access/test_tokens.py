"""Access tokens from a real OpenID Connect provider, obtained through real grants, checked by medal.

Each refusal is a 401 whose body names the reason; the token never reaches the log.
"""

from __future__ import annotations

import base64
import json
import logging
import time

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from medal.access.identify import access_context
from tests.access.conftest import Served
from tests.access.provider import OTHER_AUDIENCE, Provider


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(served: Served, token: str) -> httpx.Response:
    return httpx.get(f"{served.base}/v1/me", headers=bearer(token))


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    body = response.json()["error"]
    assert body["code"] == "unauthenticated"
    return str(body["details"][0]["reason"])


def claims_of(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_a_client_credentials_token_is_a_caller_with_its_project_roles(served: Served, provider: Provider) -> None:
    response = me(served, provider.machine_token("alpha-annotator"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "alpha-annotator" and body["kind"] == "oidc" and body["platform_admin"] is False
    assert body["projects"] == {
        "alpha": {"role": "annotator", "actions": ["view", "lease", "label", "skip-own"]},
    }


def test_a_person_signed_in_with_code_and_pkce_is_a_caller(served: Served, provider: Provider) -> None:
    tokens = provider.sign_in("rita")
    assert tokens["token_type"].lower() == "bearer" and "id_token" in tokens
    body = me(served, tokens["access_token"]).json()
    assert body["id"] == "rita" and body["name"] == "Rita Reviewer"
    assert body["projects"]["beta"]["role"] == "reviewer" and "approve" in body["projects"]["beta"]["actions"]
    assert "alpha" not in body["projects"]


def test_the_platform_admin_role_covers_every_project(served: Served, provider: Provider) -> None:
    body = me(served, provider.machine_token("operator")).json()
    assert body["platform_admin"] is True and "create-project" in body["platform_actions"]


def test_an_expired_token_is_refused(served: Served, provider: Provider) -> None:
    token = provider.machine_token("short-lived")
    assert claims_of(token)["exp"] - claims_of(token)["iat"] == 1  # type: ignore[operator]
    time.sleep(2.2)
    response = me(served, token)
    assert refusal(response) == "expired"
    assert "sign in again" in response.json()["error"]["message"]


def test_a_token_for_another_audience_is_refused(served: Served, provider: Provider) -> None:
    token = provider.machine_token("alpha-admin", resource=OTHER_AUDIENCE)
    assert claims_of(token)["aud"] == OTHER_AUDIENCE
    assert refusal(me(served, token)) == "wrong-audience"


def test_a_tampered_token_fails_its_signature(served: Served, provider: Provider) -> None:
    header, payload, signature = provider.machine_token("alpha-annotator").split(".")
    claims = claims_of(f"{header}.{payload}.{signature}")
    claims["realm_access"] = {"roles": ["medal:platform-admin"]}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert refusal(me(served, f"{header}.{forged}.{signature}")) == "bad-signature"


def test_a_token_signed_by_another_key_with_the_providers_kid_fails_its_signature(
    served: Served, provider: Provider
) -> None:
    claims = claims_of(provider.machine_token("alpha-annotator"))
    impostor = RSAKey.generate_key(2048)
    token = jwt.encode({"alg": "RS256", "kid": provider.kid}, claims, impostor)
    assert refusal(me(served, token)) == "bad-signature"


def test_symmetric_and_unsigned_tokens_are_refused_whatever_they_claim(served: Served, provider: Provider) -> None:
    claims = claims_of(provider.machine_token("operator"))
    public_as_secret = OctKey.import_key(json.dumps(provider.key["n"]).encode())
    hs = jwt.encode({"alg": "HS256", "kid": provider.kid}, claims, public_as_secret)
    assert refusal(me(served, hs)) == "algorithm-not-allowed"
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert refusal(me(served, f"{header}.{body}.")) == "algorithm-not-allowed"


def test_malformed_credentials_say_so(served: Served) -> None:
    assert refusal(me(served, "eyJhbGciOi.not-base64!.x")) == "malformed"
    assert refusal(httpx.get(f"{served.base}/v1/me")) == "missing"
    assert refusal(httpx.get(f"{served.base}/v1/me", headers={"X-API-Key": "guess"})) == "invalid-key"


def test_an_unknown_role_in_medals_namespace_is_refused(served: Served, provider: Provider) -> None:
    response = me(served, provider.machine_token("strange-role"))
    assert refusal(response) == "unknown-role"
    assert "overlord" in response.json()["error"]["message"]


def test_a_rotated_key_is_fetched_once_by_kid_and_unknown_kids_are_rate_limited(
    served: Served, provider: Provider
) -> None:
    assert me(served, provider.machine_token("alpha-annotator")).status_code == 200
    validator = access_context(served.platform).validator
    assert validator is not None
    old_kid = provider.kid
    provider.restart(new_key=True)
    assert provider.kid != old_kid
    time.sleep(1.1)  # past oidc_jwks_min_refresh_seconds since the last fetch
    before = validator.jwks_fetches
    assert me(served, provider.machine_token("alpha-annotator")).status_code == 200
    assert validator.jwks_fetches == before + 1
    # A flood of tokens naming kids the provider never published costs at most one fetch per interval.
    claims = claims_of(provider.machine_token("alpha-annotator"))
    forger = RSAKey.generate_key(2048)
    forged = [jwt.encode({"alg": "RS256", "kid": f"made-up-{n}"}, claims, forger) for n in range(8)]
    started, fetched = time.monotonic(), validator.jwks_fetches
    for token in forged:
        assert refusal(me(served, token)) == "unknown-signing-key"
    allowed = 1 + int((time.monotonic() - started) / served.settings.oidc_jwks_min_refresh_seconds)
    assert validator.jwks_fetches - fetched <= allowed < len(forged)


def test_no_token_reaches_the_log(served: Served, provider: Provider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = provider.machine_token("alpha-admin", resource=OTHER_AUDIENCE)
    assert refusal(me(served, token)) == "wrong-audience"
    key = "medal_abcdefghijkl_" + "x" * 43
    assert refusal(httpx.get(f"{served.base}/v1/me", headers={"X-API-Key": key})) == "invalid-key"
    logged = caplog.text
    assert "wrong-audience" in logged
    assert token not in logged and token.split(".")[2] not in logged and key not in logged


def test_a_browser_learns_how_to_sign_in_without_credentials(served: Served, provider: Provider) -> None:
    config = httpx.get(f"{served.base}/v1/auth/config").json()
    assert config["enabled"] is True and config["issuer"] == provider.issuer
    assert config["authorization_endpoint"] == f"{provider.issuer}/auth"
    assert config["token_endpoint"] == f"{provider.issuer}/token"
