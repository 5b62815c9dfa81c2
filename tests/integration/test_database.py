"""Database units of work: reads never queue behind a writer; failures are 503, not 500."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from bastion.errors import ServiceUnavailable
from bastion.storage.db import Database
from bastion.storage.models import User


async def test_a_read_proceeds_while_a_write_transaction_holds_the_lock(
    database_url: str,
) -> None:
    db = Database(database_url, timeout=0.5)
    await db.upgrade()
    try:
        async with db.transaction() as writer:
            writer.add(User(username="holder", password_hash="x"))
            await writer.flush()

            async def count_users() -> int:
                async with db.read() as reader:
                    return int(await reader.scalar(select(func.count()).select_from(User)) or 0)

            # the writer has not committed: the reader sees the state before it, at once
            assert await asyncio.wait_for(count_users(), timeout=2) == 0
    finally:
        await db.dispose()


async def test_a_second_writer_waits_for_the_first_on_sqlite(tmp_path: Path) -> None:
    """The write path keeps ``BEGIN IMMEDIATE``: a second writer queues (and here, with a short
    busy timeout, gives up as 503) instead of failing later on a lock upgrade."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/w.db", timeout=0.2)
    await db.upgrade()
    try:
        async with db.transaction() as first:
            await first.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: the lock is taken
            with pytest.raises(ServiceUnavailable):
                async with db.transaction() as second:
                    await second.execute(text("SELECT 1"))
    finally:
        await db.dispose()


async def test_the_sqlite_pool_is_bounded_by_the_settings_and_a_wait_is_503(
    tmp_path: Path,
) -> None:
    """Pool size and timeout apply to SQLite as to PostgreSQL: when every connection is held,
    the next unit of work waits ``timeout`` seconds, then answers 503, never 500 or forever."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/p.db", pool_size=1, timeout=0.3)
    await db.upgrade()
    release = asyncio.Event()

    async def hold() -> None:
        async with db.read() as session:
            await session.execute(text("SELECT 1"))
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]  # pool 1 + overflow 1
    await asyncio.sleep(0.1)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(ServiceUnavailable):
            async with db.read() as session:
                await session.execute(text("SELECT 1"))
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        release.set()
        await asyncio.gather(*holders)
        await db.dispose()


async def test_a_pooled_sqlite_connection_left_inside_a_transaction_is_rolled_back(
    tmp_path: Path,
) -> None:
    """The pool's reset is skipped when a unit of work ended its transaction itself, never
    when one was left open: that connection's write lock would block every later writer."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/r.db", timeout=0.5)
    await db.upgrade()

    def leave_a_write_open(sync_connection: Any) -> None:
        raw = sync_connection.engine.raw_connection()  # a second pooled connection
        raw.cursor().execute("BEGIN IMMEDIATE")  # the write lock, as a cut-short write has it
        raw.cursor().execute(
            "INSERT INTO users (username, password_hash, roles, disabled, created_at, updated_at)"
            " VALUES ('ghost', 'x', 'user', 0, '2026-12-02', '2026-12-02')"
        )
        raw.close()  # back to the pool with the transaction open

    try:
        async with db.engine.connect() as connection:
            await connection.run_sync(leave_a_write_open)
        async with db.transaction() as writer:  # would wait for the lock, then fail as 503
            writer.add(User(username="after", password_hash="x"))
        async with db.read() as reader:
            names = set(await reader.scalars(select(User.username)))
        assert names == {"after"}
    finally:
        await db.dispose()


async def test_a_finished_unit_of_work_returns_its_connection_without_another_rollback(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/n.db")
    await db.upgrade()
    rollbacks: list[object] = []
    try:
        async with db.read() as session:
            connection = await session.connection()
            driver = (await connection.get_raw_connection()).driver_connection
            original = driver.rollback

            async def counting_rollback() -> None:
                rollbacks.append(None)
                await original()

            driver.rollback = counting_rollback
            await session.execute(text("SELECT 1"))
        assert rollbacks == []  # committed by the unit of work; the pool added nothing
    finally:
        await db.dispose()
