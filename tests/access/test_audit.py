"""The audit trail: appended inside the caller's transaction, read in order, and immutable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from medal.access import audit
from medal.access.caller import Caller
from medal.db.engine import Database
from medal.db.migrate import upgrade

RITA = Caller(id="rita", kind="oidc", name="Rita Reviewer")


async def _write_and_read(url: str) -> list[audit.AuditEntry]:
    db = Database(url)
    try:
        async with db.begin() as conn:
            await audit.record(conn, RITA, "approved", "alpha", "mask", "m1", {"model_version": 3, "dice": 0.91})
            await audit.record(conn, RITA, "exported", "alpha", "export", "e1", {"images": [1, 2]})
        with pytest.raises(RuntimeError):
            async with db.begin() as conn:
                await audit.record(conn, RITA, "promoted", "alpha", "model", "v4")
                raise RuntimeError("the change failed: its audit row goes with it")
        async with db.begin() as conn:
            await audit.record(conn, RITA, "viewed", "beta", "image", "i9")
        async with db.connect() as conn:
            first = await audit.read(conn, project="alpha", limit=1)
            rest = await audit.read(conn, project="alpha", after=first[-1].seq)
            everything = await audit.read(conn)
        assert [e.action for e in first + rest] == ["approved", "exported"]
        assert len(everything) == 3
        return first + rest
    finally:
        await db.dispose()


async def _tamper(url: str, statement: str) -> None:
    db = Database(url)
    try:
        async with db.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await db.dispose()


def test_rows_are_written_with_the_change_and_read_in_order(database_url: str) -> None:
    upgrade(database_url)
    entries = asyncio.run(_write_and_read(database_url))
    approved = entries[0]
    assert (approved.actor, approved.actor_kind, approved.actor_name) == ("rita", "oidc", "Rita Reviewer")
    assert approved.details == {"model_version": 3, "dice": 0.91}
    csv_text = audit.as_csv(entries)
    assert csv_text.splitlines()[0].startswith("seq,at,actor") and '"{""model_version"": 3' in csv_text


@pytest.mark.parametrize(
    "statement",
    ["UPDATE access_audit SET actor = 'someone-else'", "DELETE FROM access_audit", "TRUNCATE access_audit"],
)
def test_the_application_cannot_update_or_delete_audit_rows_on_postgresql(postgres_url: str, statement: str) -> None:
    upgrade(postgres_url)
    asyncio.run(_write_and_read(postgres_url))
    with pytest.raises(DBAPIError, match="append-only"):
        asyncio.run(_tamper(postgres_url, statement))
    count = asyncio.run(_count(postgres_url))
    assert count == 3


def test_sqlite_refuses_updates_and_deletes_too(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'medal.db'}"
    upgrade(url)
    asyncio.run(_write_and_read(url))
    for statement in ("UPDATE access_audit SET actor = 'x'", "DELETE FROM access_audit"):
        with pytest.raises(DBAPIError, match="append-only"):
            asyncio.run(_tamper(url, statement))


async def _count(url: str) -> int:
    db = Database(url)
    try:
        async with db.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM access_audit"))).scalar_one())
    finally:
        await db.dispose()


def test_details_refuse_anything_but_short_scalars() -> None:
    async def attempt(details: dict[str, object]) -> None:
        await audit.record(None, RITA, "viewed", "alpha", "image", "i1", details)  # type: ignore[arg-type]

    bad_details: list[dict[str, object]] = [{"Patient Name": "x"}, {"note": "x" * 300}, {"nested": {"a": 1}}]
    for bad in bad_details:
        with pytest.raises(ValueError):
            asyncio.run(attempt(bad))
