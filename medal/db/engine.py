"""Database access: one async SQLAlchemy engine per process, PostgreSQL or SQLite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


class DatabaseError(RuntimeError):
    """The database could not be reached or is not migrated."""


class Database:
    """Owns the engine. Use ``async with db.begin() as conn`` for one transaction."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        if self.url.get_backend_name() == "sqlite":
            path = self.url.database
            if path and path != ":memory:":
                from pathlib import Path

                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(
                self.url, echo=echo, connect_args={"timeout": 30}, pool_pre_ping=True
            )
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            # After an outage: pre-ping replaces every pooled connection the database dropped (a disconnect
            # error also invalidates the whole pool), and a connect attempt gives up after 10 s instead of
            # asyncpg's 60 s, so a failing try ends quickly and is retried on the bus's schedule.
            self.engine = create_async_engine(
                self.url,
                echo=echo,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=10,
                pool_timeout=10,
                connect_args={"timeout": 10},
            )

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    def begin(self) -> Any:
        return self.engine.begin()

    def connect(self) -> Any:
        return self.engine.connect()

    async def check(self) -> None:
        """Raise :class:`DatabaseError` unless the database answers and is migrated."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseError(f"database {self.safe_url} not usable: {type(exc).__name__}") from exc
        if not version:
            raise DatabaseError(f"database {self.safe_url} has no schema: run `medal migrate`")

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


async def insert_ignore(
    conn: AsyncConnection, table: Table, values: Mapping[str, Any], conflict: Sequence[str]
) -> bool:
    """INSERT … ON CONFLICT DO NOTHING on both dialects. True when the row was inserted."""
    if conn.dialect.name == "postgresql":
        stmt: Any = pg_insert(table).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
    else:
        stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
    result = await conn.execute(stmt)
    return bool(result.rowcount == 1)
