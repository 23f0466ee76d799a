"""Start-up checks that turn configuration mistakes into one clear line."""

from __future__ import annotations

import asyncio

from pydantic import ValidationError

from medal.bus import BusError, build_bus
from medal.db.engine import Database, DatabaseError
from medal.settings import Settings
from medal.storage import StorageError, build_store


class ConfigurationError(RuntimeError):
    """Printed as one line by the CLI, which then exits non-zero."""


def load_settings() -> Settings:
    try:
        return Settings.from_environment()
    except ValidationError as exc:
        problems = "; ".join(
            f"MEDAL_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None


def require_distributed(settings: Settings, command: str) -> None:
    missing = [
        name
        for name, value in (
            ("MEDAL_DATABASE_URL", settings.database_url),
            ("MEDAL_BROKER_URL", settings.broker_url),
            ("MEDAL_S3_ENDPOINT", settings.s3_endpoint),
        )
        if not value
    ]
    if missing:
        raise ConfigurationError(
            f"`{command}` runs one service against PostgreSQL, RabbitMQ and S3: set {', '.join(missing)} "
            "(or use `medal up` for the embedded mode)"
        )


def check_dependencies(settings: Settings) -> None:
    """Database reachable and migrated, broker reachable, object store usable."""
    database = Database(settings.effective_database_url)

    async def check_db() -> None:
        try:
            await database.check()
        finally:
            await database.dispose()

    try:
        asyncio.run(check_db())
    except DatabaseError as exc:
        raise ConfigurationError(str(exc)) from None
    bus = build_bus(settings)
    try:
        bus.check()
    except BusError as exc:
        raise ConfigurationError(str(exc)) from None
    finally:
        bus.close()
    try:
        build_store(settings).check()
    except StorageError as exc:
        raise ConfigurationError(str(exc)) from None


def _uses_default_deid_secret(settings: Settings) -> bool:
    default = Settings.model_fields["deid_secret"].default
    return settings.deid_secret.get_secret_value() == default.get_secret_value()


MIN_DEID_SECRET = 16
#: The services that pseudonymise with MEDAL_DEID_SECRET (the others never read it, so need not hold it).
PSEUDONYMISING_SERVICES = frozenset({"ingest"})


def require_safe_configuration(settings: Settings, command: str, service: str) -> None:
    """`medal serve` and `medal worker` never start open to anyone, nor pseudonymise with the development secret."""
    if not settings.authentication_configured:
        raise ConfigurationError(
            f"`{command}` will not start open to anyone: set MEDAL_OIDC_ISSUER and MEDAL_OIDC_AUDIENCE "
            "(single sign-on), or MEDAL_API_KEYS (platform-admin keys), or both"
        )
    if settings.oidc_issuer and not settings.oidc_audience:
        raise ConfigurationError("MEDAL_OIDC_AUDIENCE must be set with MEDAL_OIDC_ISSUER (the `aud` tokens carry)")
    secret = settings.deid_secret.get_secret_value()
    if service not in PSEUDONYMISING_SERVICES:
        return
    if _uses_default_deid_secret(settings):
        problem = "the built-in development MEDAL_DEID_SECRET"
    elif len(secret) < MIN_DEID_SECRET:
        problem = f"a MEDAL_DEID_SECRET under {MIN_DEID_SECRET} characters"
    else:
        return
    raise ConfigurationError(
        f"`{command}` will not pseudonymise with {problem}: set MEDAL_DEID_SECRET to a random secret "
        f"of your own ({MIN_DEID_SECRET}+ characters, kept safe: it links pseudonyms to patients)"
    )


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def embedded_access_notice(settings: Settings, host: str) -> str | None:
    """For `medal up`: None when callers must sign in; a warning when open on loopback; refuses otherwise."""
    if settings.authentication_configured:
        if settings.oidc_issuer and not settings.oidc_audience:
            raise ConfigurationError("MEDAL_OIDC_AUDIENCE must be set with MEDAL_OIDC_ISSUER")
        return None
    if not is_loopback(host):
        raise ConfigurationError(
            f"`medal up --host {host}` would be open to anyone on the network: set MEDAL_API_KEYS or "
            "MEDAL_OIDC_ISSUER and MEDAL_OIDC_AUDIENCE, or serve on 127.0.0.1"
        )
    return (
        f"medal: no authentication configured: open to anyone on this machine ({host} only); "
        "set MEDAL_API_KEYS or MEDAL_OIDC_ISSUER to require sign-in"
    )
