"""Database units of work: reads never queue behind a writer; failures are 503, not 500."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
