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
