"""The database engine and its transactions: SQLite (WAL) by default, PostgreSQL in production.

Knows nothing of HTTP. Every unit of work is one transaction (``Database.transaction`` and
``Database.read`` in an async session, ``Database.run`` for one written against the synchronous
``Session``), so a change and the audit event that describes it commit or roll back together
(SPEC §6).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import structlog
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

from bastion.errors import ServiceUnavailable, ValidationFailed

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
READ_ONLY = "bastion_read_only"
"""Execution option marking a read-only unit of work (see ``Database.read``)."""

UNAVAILABLE = "The database is unavailable; try again shortly."
T = TypeVar("T")
Work = Callable[[Session], T]
"""A unit of work written against SQLAlchemy's synchronous ``Session`` (``Database.run``)."""
CoreWork = Callable[[Connection], T]
"""A unit of work of Core statements on a synchronous ``Connection`` (``Database.run_core``)."""
_AFTER_COMMIT = "bastion_after_commit"
_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, OSError, TimeoutError, PoolTimeout)

logger = structlog.get_logger("bastion.storage")


def after_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Call ``callback`` once the ``Database.run_core`` unit of work that ``conn`` belongs to
    has committed; never if it rolls back (the audit log must not tell of a change that did
    not happen, SPEC §6). Outside such a unit of work it is an error, not a callback kept for
    whichever unit of work the pooled connection serves next."""
    try:
        conn.info[_AFTER_COMMIT][conn].append(callback)
    except KeyError:
        raise RuntimeError("after_commit() outside a Database.run_core unit of work") from None


def _core_unit_of_work(conn: Connection, work: CoreWork[T]) -> T:
    # ``conn.info`` belongs to the pooled DBAPI connection (read once: after a failure that
    # invalidated the connection, reading it again would open a new one) and outlives this
    # checkout; on ``:memory:`` one DBAPI connection serves every unit of work, so each keeps
    # its callbacks under its own ``Connection``.
    units: dict[Connection, list[Callable[[], None]]] = conn.info.setdefault(_AFTER_COMMIT, {})
    pending = units[conn] = []
    try:
        with conn.begin():
            result = work(conn)
    finally:
        del units[conn]
    for callback in pending:
        try:
            callback()
        except Exception:  # committed already: a failing log sink must not turn it into a 500
            with suppress(Exception):
                logger.exception("after_commit_failed")
    return result


class Database:
    """One engine per process, created from a URL and disposed of at shutdown."""

    def __init__(self, url: str, *, pool_size: int = 10, timeout: float = 5.0) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine: AsyncEngine = self._create_engine(pool_size, timeout)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(**{READ_ONLY: True})
        self._read_sessions = async_sessionmaker(self._read_engine, expire_on_commit=False)
        self._threaded = (
            ThreadedSQLite(self.url, pool_size, timeout)
            if self.is_sqlite and _is_file(self.url)
            else None
        )

    def _create_engine(self, pool_size: int, timeout: float) -> AsyncEngine:
        if self.is_sqlite:
            if _is_file(self.url):
                assert self.url.database is not None
                _create_private_file(Path(self.url.database))
            engine = create_async_engine(self.url, **_sqlite_options(self.url, pool_size, timeout))
            _listen_sqlite(engine.sync_engine)
            return engine
        return create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=timeout,
            pool_pre_ping=True,
            connect_args={"timeout": timeout, "command_timeout": timeout},
        )

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session inside one transaction: committed when the block ends, rolled back when it
        raises. A database that cannot be reached becomes 503, never 500 (SPEC §3)."""
        return self._unit_of_work(self.sessions)

    async def run(self, work: Work[T], *, read_only: bool = False) -> T:
        """``work`` as one transaction, committed when it returns, rolled back when it raises,
        with the same 503 and 422 as :meth:`transaction`.

        On a SQLite file it runs whole in a worker thread with the standard ``sqlite3`` driver
        (:class:`ThreadedSQLite`). Through aiosqlite every cursor call is a round trip between
        the event loop and the connection's thread, four per statement at ~55 µs of CPU each,
        which made the two transactions of a login cost ~3 ms of CPU; in one hop each they
        cost about 1.1 ms (SPEC §8). Elsewhere (PostgreSQL, ``:memory:``) it runs in an async
        session, through ``run_sync``. Hot paths use it; the rest keeps :meth:`transaction`."""
        if self._threaded is not None:
            with _translating():
                return await self._threaded.run(work, read_only=read_only)
        sessions = self._read_sessions if read_only else self.sessions
        async with self._unit_of_work(sessions) as session:
            return await session.run_sync(work)

    async def run_core(self, work: CoreWork[T], *, read_only: bool = False) -> T:
        """:meth:`run` for a unit of work of Core statements only, on a ``Connection``
        instead of an ORM ``Session``: for a login's two small transactions the session
        itself was half of the cost (~0.15 ms of CPU each). The same transaction, 503 and
        422; :func:`after_commit` stands in for the session's ``after_commit`` event."""
        if self._threaded is not None:
            with _translating():
                return await self._threaded.run_core(work, read_only=read_only)
        engine = self._read_engine if read_only else self.engine
        with _translating():
            async with engine.connect() as conn:
                return await conn.run_sync(_core_unit_of_work, work)

    def read(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A transaction that only reads. On SQLite it does not take the write lock, so the
        caches' re-reads on the hot path (users, keys, sessions) never queue behind a write."""
        return self._unit_of_work(self._read_sessions)

    @asynccontextmanager
    async def _unit_of_work(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> AsyncIterator[AsyncSession]:
        with _translating():
            async with sessions() as session, session.begin():
                yield session

    async def ping(self, within: float = 2.0) -> bool:
        """The database answers ``SELECT 1`` within ``within`` seconds."""

        async def select_one() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        try:
            await asyncio.wait_for(select_one(), within)
        except Exception:  # unreachable, refused, timed out: all of them are "down"
            return False
        return True

    async def upgrade(self) -> None:
        """Apply every Alembic migration (idempotent); an unreachable database is a 503-style
        :class:`ServiceUnavailable`, as for every other unit of work."""
        try:
            async with self.engine.begin() as conn:
                await _run_migrations(conn)
        except _UNAVAILABLE_ERRORS as exc:
            raise ServiceUnavailable(UNAVAILABLE) from exc

    async def dispose(self) -> None:
        try:
            if self._threaded is not None:
                await anyio.to_thread.run_sync(self._threaded.engine.dispose)
        finally:
            await self.engine.dispose()


class ThreadedSQLite:
    """A SQLite file's units of work run whole in a worker thread (``Database.run``).

    A second engine on the same file, with the standard ``sqlite3`` driver and the same
    settings (pool, busy timeout, WAL, ``BEGIN IMMEDIATE`` for writes), so the two engines'
    transactions serialise on SQLite's own lock exactly as two connections of one would.

    At most as many units of work run at once as the pool has connections; the next waits for
    one at most ``timeout`` seconds, then fails as the pool would (503), so a burst queues for
    a bounded time instead of without end."""

    def __init__(self, url: URL, pool_size: int, timeout: float) -> None:
        sync_url = url.set(drivername="sqlite")
        options = _sqlite_options(url, pool_size, timeout)
        options["connect_args"]["check_same_thread"] = False  # a pooled connection moves
        self.engine: Engine = create_engine(sync_url, **options)
        _listen_sqlite(self.engine)
        self._read_engine = self.engine.execution_options(**{READ_ONLY: True})
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        self._slots = anyio.CapacityLimiter(2 * pool_size)  # pool_size + max_overflow
        self._threads = anyio.CapacityLimiter(2 * pool_size)  # never waited on: slots bound it
        self._timeout = timeout

    async def run(self, work: Work[T], *, read_only: bool) -> T:
        sessions = self._read_sessions if read_only else self._sessions

        def unit_of_work() -> T:
            with sessions() as session, session.begin():
                return work(session)

        return await self._in_thread(unit_of_work)

    async def run_core(self, work: CoreWork[T], *, read_only: bool) -> T:
        engine = self._read_engine if read_only else self.engine

        def unit_of_work() -> T:
            with engine.connect() as conn:
                return _core_unit_of_work(conn, work)

        return await self._in_thread(unit_of_work)

    async def _in_thread(self, unit_of_work: Callable[[], T]) -> T:
        # Only the wait for a slot has a deadline: once the thread has started, its work is
        # waited for to the end (it cannot be stopped, and may already have committed). A free
        # slot is taken at once: the deadline's cancel scope and the extra turn of the event
        # loop cost a tenth of a login's work outside the hash, for nothing when none waits.
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            await self._wait_for_slot()
        try:
            return await anyio.to_thread.run_sync(unit_of_work, limiter=self._threads)
        finally:
            self._slots.release()

    async def _wait_for_slot(self) -> None:
        try:
            with anyio.fail_after(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeout(f"no database connection free within {self._timeout} s") from None


def _is_file(url: URL) -> bool:
    return bool(url.database) and url.database != ":memory:"


def _sqlite_options(url: URL, pool_size: int, timeout: float) -> dict[str, Any]:
    """A file's pool is sized and bounded like PostgreSQL's; ``:memory:`` has one connection."""
    pool: dict[str, Any] = (
        {"pool_size": pool_size, "max_overflow": pool_size, "pool_timeout": timeout}
        if _is_file(url)
        else {}
    )
    return {
        "connect_args": {"timeout": timeout, "isolation_level": None},
        "pool_reset_on_return": None,  # _sqlite_reset does it, only when there is a need
        **pool,
    }


def _listen_sqlite(engine: Engine) -> None:
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_begin)
    event.listen(engine, "reset", _sqlite_reset)


@contextmanager
def _translating() -> Iterator[None]:
    """What a unit of work's failure means to a client: an unreachable or locked database is
    503, never 500 (SPEC §3); a value it cannot store is 422; any other failure is raised as
    it is."""
    try:
        yield
    except _UNAVAILABLE_ERRORS as exc:
        raise ServiceUnavailable(UNAVAILABLE) from exc
    except DataError as exc:
        # A value the database cannot store (out of range, bad encoding) came from a client:
        # a 422, never a 500. Validation should have caught it first; this is the safety net.
        raise ValidationFailed(
            [{"loc": ["body"], "msg": "A value cannot be stored.", "type": "value_error"}],
            detail="A value in the request cannot be stored.",
        ) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise ServiceUnavailable(UNAVAILABLE) from exc
        raise


def _create_private_file(path: Path) -> None:
    """The database holds password hashes: its directory is created 0700 and the file 0600
    (SQLite gives its -wal and -shm files the database file's mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers proceed while one writer commits; foreign keys are off by default. The
    busy timeout is the driver's ``timeout`` (the ``Database`` one), not a second number here."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    """Take the write lock at BEGIN, so that two racing transactions (say, two refreshes of one
    token) queue behind each other instead of failing on a lock upgrade; a read-only one
    (``Database.read``) begins deferred and reads its WAL snapshot without the lock.

    Sent on a cursor of the DBAPI connection (sqlite3's, or aiosqlite's adapted one), not
    through ``exec_driver_sql``: SQLAlchemy's whole statement machinery for a fixed statement
    was ~70k instructions of every unit of work, a login's two included."""
    statement = "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(statement)
    except sqlite3.Error as exc:
        # wrapped as SQLAlchemy would have: a lock not free in time is its OperationalError,
        # which every caller already maps to 503
        raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc
    finally:
        cursor.close()


def _sqlite_reset(dbapi_connection: Any, record: Any, reset_state: Any) -> None:
    """A connection back in the pool is rolled back only if a transaction is still open on
    it (a unit of work that was cut short). Every unit of work ends its own, so the pool's
    usual unconditional rollback is almost always a second one, and with aiosqlite each call
    is a round trip to the connection's thread: about a tenth of a transaction's cost. Both
    drivers' connections (aiosqlite's and sqlite3's) say whether a transaction is open."""
    if reset_state.terminate_only:
        return  # the connection is being discarded, not reused
    driver = record.driver_connection
    if getattr(driver, "in_transaction", True):
        dbapi_connection.rollback()


async def _run_migrations(conn: AsyncConnection) -> None:
    from alembic import command
    from alembic.config import Config

    def upgrade(sync_conn: Any) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = sync_conn
        command.upgrade(config, "head")

    await conn.run_sync(upgrade)
