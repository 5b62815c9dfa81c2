"""Migrations (SPEC §7): ``0006`` turns the lockout's fixed-window count into the times of the
recent failures without giving a name in the middle of a burst fresh attempts, and both new
migrations go down again, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from bastion.lockout import Lockout
from bastion.storage.db import MIGRATIONS_DIR, Database
from tests.conftest import POSTGRES_URL, _pg_execute

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, of each kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    request.getfixturevalue("postgres_database")  # skips (or fails in CI) without the server
    name = f"bastion_migrations_{secrets.token_hex(6)}"
    asyncio.run(_pg_execute(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    asyncio.run(_pg_execute(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def migrate(db: Database, direction: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    def run(sync_conn: Any) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = sync_conn
        getattr(command, direction)(config, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(run)


async def columns(db: Database, table: str) -> set[str]:
    def names(sync_conn: Any) -> set[str]:
        from sqlalchemy import inspect

        return {c["name"] for c in inspect(sync_conn).get_columns(table)}

    async with db.engine.connect() as conn:
        return await conn.run_sync(names)


async def test_failure_counts_are_carried_over_as_recent_failures(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        await migrate(db, "upgrade", "0005")
        async with db.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO login_failures "
                    "(username, failures, window_started_at, locked_until, lock_count, updated_at) "
                    "VALUES ('alice', 3, :at, NULL, 1, :at), ('bob', 0, :at, NULL, 0, :at)"
                ),
                {"at": NOW},
            )
        await migrate(db, "upgrade", "head")
        assert "recent_failures" in await columns(db, "login_failures")
        assert not {"failures", "window_started_at"} & await columns(db, "login_failures")

        lockout = Lockout(db, threshold=5, window_seconds=900, clock=lambda: NOW.timestamp() + 60)

        def count_alice_twice(session: Session) -> list[bool]:
            return [lockout.count_failure(session, "alice") for _ in range(2)]

        assert await db.run(count_alice_twice) == [False, True]  # 3 carried over + 2
        assert await db.run(lambda session: lockout.count_failure(session, "bob")) is False

        await migrate(db, "downgrade", "0005")
        async with db.transaction() as session:
            rows = (
                await session.execute(
                    text("SELECT username, failures FROM login_failures ORDER BY username")
                )
            ).all()
        assert [tuple(r) for r in rows] == [("alice", 0), ("bob", 1)]
        await migrate(db, "upgrade", "head")
    finally:
        await db.dispose()
