"""Migration 0015 on SQLite and PostgreSQL: the trainer's tables match medal/db/schema, both ways.

A version promoted by a person before 0015 stays pinned (``promoted_by`` = 'unknown'); down and up
again keeps the data of a round's first attempt.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from medal.db.engine import Database
from medal.db.migrate import downgrade, upgrade
from medal.db.schema import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'medal.db'}"
    return str(request.getfixturevalue("postgres_url"))


TRAINER_TABLES = {"trainer_rounds", "trainer_jobs", "trainer_model_versions"}


def _trainer_changes(changes: list[object]) -> list[object]:
    return [change for change in changes if any(table in repr(change) for table in TRAINER_TABLES)]


async def test_0015_matches_the_schema_and_keeps_a_persons_promotion(empty_url: str) -> None:
    import asyncio

    await asyncio.to_thread(upgrade, empty_url, "0013")
    db = Database(empty_url)
    try:
        async with db.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO trainer_rounds (id, project, round_number, labels, labelled_set_key, pool_key, "
                    "committee_size, training, selection, seed, correlation_id, state, created_at, updated_at) "
                    "VALUES ('r1', 'p', 0, 1, 'k', 'pool', 1, '{}', '{}', 1, 'c', 'trained', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO trainer_model_versions (id, project, version, round_id, round_number, labels, "
                    "labelled_set_key, members, validation_dice, training, status, created_at, promoted_by_person) "
                    "VALUES ('v1', 'p', 1, 'r1', 0, 1, 'k', '[]', 0.5, '{}', 'current', CURRENT_TIMESTAMP, :yes)"
                ),
                {"yes": True},
            )
        await asyncio.to_thread(upgrade, empty_url)
        async with db.connect() as conn:
            changes = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
            assert _trainer_changes(list(changes)) == []
            assert (await conn.execute(text("SELECT promoted_by FROM trainer_model_versions"))).scalar() == "unknown"
            assert (await conn.execute(text("SELECT attempt FROM trainer_rounds"))).scalar() == 1
        await asyncio.to_thread(downgrade, empty_url, "0013")
        async with db.connect() as conn:
            pinned = (await conn.execute(text("SELECT promoted_by_person FROM trainer_model_versions"))).scalar()
            assert bool(pinned)
        await asyncio.to_thread(upgrade, empty_url)
    finally:
        await db.dispose()
