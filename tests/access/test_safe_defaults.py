"""Safe defaults: distributed processes never start open or with the development secret; `medal up` says so."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr, ValidationError

from medal.cli import main
from medal.preflight import ConfigurationError, embedded_access_notice, is_loopback
from medal.settings import Settings

DISTRIBUTED = {
    "MEDAL_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
    "MEDAL_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2F",
    "MEDAL_S3_ENDPOINT": "127.0.0.1:1",
}
SECRET = "a-deployment-secret-of-32-characters"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [n for n in os.environ if n.startswith("MEDAL_")]:
        monkeypatch.delenv(name)
    for name, value in DISTRIBUTED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def refusal(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one clear line
    return err


@pytest.mark.parametrize("command", [("serve", "annotation"), ("worker", "annotation")])
def test_distributed_processes_refuse_to_start_without_authentication(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: tuple[str, str]
) -> None:
    env.setenv("MEDAL_DEID_SECRET", SECRET)
    assert "will not start open to anyone" in refusal(capsys, *command)


def test_the_pseudonymising_service_refuses_the_development_deid_secret(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("MEDAL_API_KEYS", "k" * 32)
    assert "built-in development MEDAL_DEID_SECRET" in refusal(capsys, "serve", "ingest")
    env.setenv("MEDAL_DEID_SECRET", "short")
    assert "under 16 characters" in refusal(capsys, "serve", "ingest")
    # The services that never read the secret need not hold it: they get past this check.
    for command in (("serve", "annotation"), ("worker", "inference")):
        err = refusal(capsys, *command)
        assert "DEID" not in err and "open to anyone" not in err


def test_an_issuer_needs_an_audience(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("MEDAL_DEID_SECRET", SECRET)
    env.setenv("MEDAL_OIDC_ISSUER", "https://idp.example/realms/hospital")
    assert "MEDAL_OIDC_AUDIENCE must be set" in refusal(capsys, "serve", "annotation")


def test_a_configured_process_gets_past_the_access_checks(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("MEDAL_DEID_SECRET", SECRET)
    env.setenv("MEDAL_OIDC_ISSUER", "https://idp.example/realms/hospital")
    env.setenv("MEDAL_OIDC_AUDIENCE", "medal")
    err = refusal(capsys, "serve", "annotation")  # now the unreachable database is the one problem
    assert "open to anyone" not in err and "DEID" not in err


def test_medal_up_refuses_a_network_address_without_authentication(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in DISTRIBUTED:
        env.delenv(name)
    assert "open to anyone on the network" in refusal(capsys, "up", "--host", "0.0.0.0")


def test_medal_up_on_loopback_stays_open_but_says_so() -> None:
    open_settings = Settings(api_keys=[])
    notice = embedded_access_notice(open_settings, "127.0.0.1")
    assert notice is not None and "open to anyone on this machine" in notice
    assert embedded_access_notice(Settings(api_keys=[SecretStr("k" * 16)]), "0.0.0.0") is None
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.1.2.3", "medal.hospital.org"))
    with pytest.raises(ConfigurationError):
        embedded_access_notice(open_settings, "10.1.2.3")


@pytest.mark.parametrize("algorithms", ["none", "HS256", "RS256,HS512", ""])
def test_only_asymmetric_algorithms_may_be_accepted(algorithms: str) -> None:
    with pytest.raises(ValidationError):
        Settings(oidc_algorithms=algorithms)  # type: ignore[arg-type]
