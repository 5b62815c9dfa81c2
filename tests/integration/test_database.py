"""Database units of work: reads never queue behind a writer; failures are 503, not 500."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from structlog.testing import capture_logs

from bastion.errors import ServiceUnavailable
from bastion.storage.db import Database, after_commit
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


# ---------------------------------------------------------------- units of work in a thread


async def _usernames(db: Database) -> set[str]:
    async with db.read() as reader:
        return set(await reader.scalars(select(User.username)))


def _add_user(name: str) -> Any:
    def work(session: Any) -> int:
        user = User(username=name, password_hash="x")
        session.add(user)
        session.flush()
        return int(user.id)

    return work


def _insert_user(name: str) -> Any:
    def work(conn: Any) -> None:
        conn.execute(insert(User.__table__), {"username": name, "password_hash": "x"})

    return work


async def test_run_commits_what_its_work_returns_and_rolls_back_what_raises(
    database_url: str,
) -> None:
    """``Database.run`` is one transaction on every backend: the threaded SQLite file and
    the async session of PostgreSQL (and of in-memory SQLite, below)."""
    await _check_run_is_one_transaction(Database(database_url))


async def test_run_is_one_transaction_on_in_memory_sqlite_too() -> None:
    await _check_run_is_one_transaction(Database("sqlite+aiosqlite:///:memory:"))


async def _check_run_is_one_transaction(db: Database) -> None:
    await db.upgrade()
    try:
        user_id = await db.run(_add_user("kept"))
        assert user_id > 0

        def add_then_fail(session: Any) -> None:
            _add_user("lost")(session)
            raise LookupError("the work itself failed")

        with pytest.raises(LookupError):  # not the work's own error turned into a 503 or 500
            await db.run(add_then_fail)
        assert await _usernames(db) == {"kept"}
        assert await db.run(lambda s: s.scalar(select(User.id)), read_only=True) == user_id
    finally:
        await db.dispose()


async def test_on_a_sqlite_file_run_works_off_the_event_loop_with_the_request_context(
    tmp_path: Path,
) -> None:
    """The work runs whole in a worker thread (the point of it: one hop, not four per
    statement), and sees the context variables of its caller, such as the request's."""
    import contextvars
    import threading

    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    await db.upgrade()
    marker.set("the caller's")
    try:
        thread, seen = await db.run(lambda _s: (threading.get_ident(), marker.get()))
        assert thread != threading.get_ident()
        assert seen == "the caller's"
    finally:
        await db.dispose()


@pytest.mark.parametrize("core", [False, True], ids=["run", "run_core"])
async def test_a_threaded_write_waits_for_an_async_one_and_gives_up_as_503(
    tmp_path: Path, core: bool
) -> None:
    """Both engines on one file serialise on SQLite's own write lock (``BEGIN IMMEDIATE`` in
    each), so a write through ``run`` or ``run_core`` can never interleave with one through
    ``transaction``; past the busy timeout it is a 503. A read-only one does not wait at all
    (a login's read of the lock and the user never queues behind a write)."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/l.db", timeout=0.3)
    await db.upgrade()
    run = db.run_core if core else db.run
    add = _insert_user if core else _add_user
    try:
        async with db.transaction() as writer:
            writer.add(User(username="holder", password_hash="x"))
            await writer.flush()
            started = asyncio.get_running_loop().time()
            with pytest.raises(ServiceUnavailable):
                await run(add("second"))
            assert asyncio.get_running_loop().time() - started < 2
            count = await asyncio.wait_for(
                run(lambda s: s.scalar(select(func.count()).select_from(User)), read_only=True),
                timeout=2,
            )
            assert count == 0  # the holder has not committed
        assert await _usernames(db) == {"holder"}
        await run(add("after"))  # the lock is free again
        assert await _usernames(db) == {"holder", "after"}
    finally:
        await db.dispose()


async def test_a_threaded_unit_of_work_that_fails_on_the_database_is_503(
    tmp_path: Path,
) -> None:
    """A database error in the work (here a table that does not exist, as after a missed
    migration) is the database being unusable: 503, the same as through ``transaction``."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/e.db")
    try:
        with pytest.raises(ServiceUnavailable):
            await db.run(lambda s: s.scalar(select(User.id)), read_only=True)
    finally:
        await db.dispose()


async def test_threaded_units_of_work_beyond_the_pool_wait_timeout_then_503(
    tmp_path: Path,
) -> None:
    """As for the async engine: with every slot taken (pool 1 + overflow 1), the next unit of
    work waits ``timeout`` seconds, then answers 503, never 500 or forever; the ones running
    finish and commit."""
    import threading

    db = Database(f"sqlite+aiosqlite:///{tmp_path}/s.db", pool_size=1, timeout=0.3)
    await db.upgrade()
    release = threading.Event()

    def hold(session: Any) -> int:
        release.wait(10)
        return int(session.scalar(select(func.count()).select_from(User)) or 0)

    holders = [asyncio.create_task(db.run(hold, read_only=True)) for _ in range(2)]
    await asyncio.sleep(0.1)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(ServiceUnavailable):
            await db.run(_add_user("third"))
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        release.set()
        assert await asyncio.gather(*holders) == [0, 0]
    await db.run(_add_user("later"))  # the slots are free again
    assert await _usernames(db) == {"later"}
    await db.dispose()


# ------------------------------------------------------------ Core units of work (run_core)


async def test_run_core_is_one_transaction_and_calls_back_only_after_its_commit(
    database_url: str,
) -> None:
    """``Database.run_core`` on every backend: what its work wrote commits with it or not at
    all, and an ``after_commit`` callback runs once its transaction has committed, never after
    a rollback, nor in a later unit of work that gets the same pooled connection."""
    await _check_run_core(Database(database_url, pool_size=1))


async def test_run_core_on_in_memory_sqlite_too() -> None:
    await _check_run_core(Database("sqlite+aiosqlite:///:memory:"))


async def _check_run_core(db: Database) -> None:
    await db.upgrade()
    called: list[str] = []

    def write_then(name: str, fail: bool) -> Any:
        def work(conn: Any) -> str:
            _insert_user(name)(conn)
            seen_inside = name in set(conn.scalars(select(User.username)))
            after_commit(conn, lambda: called.append(name))
            assert called == [] or called[-1] != name  # not before the commit
            if fail:
                raise LookupError("the work itself failed")
            return f"{name}:{seen_inside}"

        return work

    try:
        assert await db.run_core(write_then("kept", fail=False)) == "kept:True"
        assert called == ["kept"]
        with pytest.raises(LookupError):  # the work's own error, not a 503 or a 500
            await db.run_core(write_then("lost", fail=True))
        assert await _usernames(db) == {"kept"}
        assert called == ["kept"]
        # the next unit of work, on the same pooled connection, does not run the lost callback
        assert await db.run_core(lambda c: c.scalar(select(func.count()).select_from(User)))
        assert called == ["kept"]
        read = await db.run_core(lambda c: c.scalar(select(User.username)), read_only=True)
        assert read == "kept"
    finally:
        await db.dispose()


async def test_a_failing_callback_neither_undoes_nor_hides_a_commit(tmp_path: Path) -> None:
    """Once committed, a unit of work has happened: a callback that fails (a broken log sink,
    say) is logged, the others still run, and the caller gets the work's result, not a 500
    for a change that was made."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/f.db")
    await db.upgrade()
    called: list[str] = []

    def broken() -> None:
        raise OSError("the log sink is gone")

    def work(conn: Any) -> str:
        _insert_user("kept")(conn)
        after_commit(conn, broken)
        after_commit(conn, lambda: called.append("second"))
        return "done"

    try:
        with capture_logs() as logs:
            assert await db.run_core(work) == "done"
        assert called == ["second"]
        assert await _usernames(db) == {"kept"}
        assert [entry["event"] for entry in logs] == ["after_commit_failed"]
    finally:
        await db.dispose()


async def test_after_commit_outside_a_core_unit_of_work_is_refused(tmp_path: Path) -> None:
    """A callback registered on some other connection would stay with the pooled connection
    and fire at the commit of whichever unit of work it served next."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/o.db")
    await db.upgrade()
    try:
        async with db.engine.connect() as conn:
            with pytest.raises(RuntimeError, match=r"outside a Database\.run_core"):
                await conn.run_sync(after_commit, lambda: None)
    finally:
        await db.dispose()
