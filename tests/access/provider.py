"""A real OpenID Connect provider process (`oidc-provider` from npm, tests/access/oidc/server.mjs).

Tokens come from real grants: client credentials for machines, authorization code + PKCE for people
(through the provider's own sign-in and consent pages, driven with httpx).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
from joserfc.jwk import RSAKey

from medal.local_server import free_port

HERE = Path(__file__).parent / "oidc"
AUDIENCE = "urn:medal:api"
OTHER_AUDIENCE = "urn:other:api"
WEB_CLIENT = "medal-web"
REDIRECT_URI = "http://127.0.0.1:9/callback"


def install() -> str | None:
    """node_modules installed from the lock file; the reason it cannot be, or None."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm"
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            return f"npm ci of oidc-provider ({result.stderr.strip()[-200:]})"
    return None


def signing_key() -> dict[str, Any]:
    key = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)
    return dict(key.as_dict(private=True))


class Provider:
    """One provider process on a fixed port; :meth:`restart` brings it back with a new signing key."""

    def __init__(
        self,
        workdir: Path,
        machines: list[dict[str, Any]],
        people: dict[str, Any],
        redirect_uris: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.machines = {m["client_id"]: m for m in machines}
        self.people = people
        self.redirect_uris = [REDIRECT_URI, *redirect_uris]  # the web UI's own page, for the browser test
        self.key = signing_key()
        self.process: subprocess.Popen[str] | None = None

    @property
    def kid(self) -> str:
        return str(self.key["kid"])

    def start(self) -> None:
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "audience": AUDIENCE,
            "resources": [AUDIENCE, OTHER_AUDIENCE],
            "ttl": 300,
            "signing_key": self.key,
            "cookie_secret": secrets.token_hex(16),
            "machines": list(self.machines.values()),
            "people": self.people,
            "web_client_id": WEB_CLIENT,
            "redirect_uri": REDIRECT_URI,
            "redirect_uris": self.redirect_uris,
        }
        path = self.workdir / "provider.json"
        path.write_text(json.dumps(config))
        log = (self.workdir / "provider.log").open("a")
        self.process = subprocess.Popen(
            ["node", str(HERE / "server.mjs"), str(path)], cwd=HERE, stdout=subprocess.PIPE, stderr=log, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(
                f"the OIDC provider did not start: {(self.workdir / 'provider.log').read_text()[-2000:]}"
            )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None

    def restart(self, *, new_key: bool) -> None:
        self.stop()
        if new_key:
            self.key = signing_key()
        deadline = time.monotonic() + 10
        while True:  # the port is ours again once the old process is gone
            try:
                self.start()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def machine_token(self, client_id: str, *, resource: str = AUDIENCE) -> str:
        """An access token from the client-credentials grant."""
        machine = self.machines[client_id]
        response = httpx.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": machine["client_secret"],
                "scope": "api",
                "resource": resource,
            },
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def sign_in(self, account: str) -> dict[str, Any]:
        """The token response of a person signing in: authorization code with PKCE (S256), as the web UI does."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        with httpx.Client(base_url=self.issuer, follow_redirects=False) as browser:
            response = browser.get(
                "/auth",
                params={
                    "client_id": WEB_CLIENT,
                    "redirect_uri": REDIRECT_URI,
                    "response_type": "code",
                    "scope": "openid api",
                    "resource": AUDIENCE,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                    "state": state,
                },
            )
            for _ in range(10):  # sign-in page, then consent page, then back to the redirect URI
                location = response.headers.get("location", "")
                if location.startswith(REDIRECT_URI):
                    break
                if response.status_code in (302, 303):
                    response = browser.get(urljoin(self.issuer, location))
                    continue
                page = response.text
                action = re.search(r'action="([^"]+)"', page)
                assert action is not None, page[:500]
                prompt = re.search(r'name="prompt" value="([a-z]+)"', page)
                form = {"prompt": prompt.group(1) if prompt else "login"}
                if form["prompt"] == "login":
                    form |= {"login": account, "password": "any"}
                response = browser.post(urljoin(self.issuer, action.group(1)), data=form)
            query = parse_qs(urlparse(response.headers["location"]).query)
            assert query.get("state") == [state], query
            token = browser.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": query["code"][0],
                    "redirect_uri": REDIRECT_URI,
                    "client_id": WEB_CLIENT,
                    "code_verifier": verifier,
                },
            )
            token.raise_for_status()
            result: dict[str, Any] = token.json()
            return result
