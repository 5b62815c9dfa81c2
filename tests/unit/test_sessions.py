"""SessionService (SPEC §4.3): opaque ids stored as digests, idle and absolute lifetimes, and at
most one ``last_seen_at`` write per session per ``touch_every`` seconds (SPEC §8).

A fake clock drives the lifetimes; the cache's own staleness (``ttl``) runs on real time and is
set to 0 where a test must see the database on every call.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, update

from bastion.audit.metrics import Metrics
from bastion.audit.recorder import AuditRecorder
from bastion.sessions import (
    CSRF_COOKIE,
    SECURE_PREFIX,
    SESSION_COOKIE,
    InvalidSession,
    SessionService,
    cookie_names,
    session_digest,
)
from bastion.storage.db import Database
from bastion.storage.models import Session
from bastion.storage.repositories.sessions import SessionRepository
from bastion.storage.repositories.users import UserRepository

START = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def at(self, offset: float) -> None:
        self.now = START + offset


@pytest.fixture
async def user_id(db: Database) -> int:
    async with db.transaction() as session:
        user = await UserRepository(session).create("alice", "$argon2id$unused", ["user"])
        return user.id


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_service(
    db: Database,
    clock: FakeClock,
    *,
    idle: int = 60,
    absolute: int = 300,
    touch_every: float = 30.0,
    ttl: float = 0.0,
) -> SessionService:
    return SessionService(
        db,
        AuditRecorder(db, Metrics()),
        idle_seconds=idle,
        absolute_seconds=absolute,
        touch_every=touch_every,
        ttl=ttl,
        clock=clock,
    )


async def new_session(service: SessionService, user_id: int) -> str:
    return await service.create(user_id, "alice")


async def stored(db: Database) -> list[Session]:
    async with db.transaction() as session:
        return list((await session.execute(select(Session))).scalars())


@contextmanager
def counting(db: Database, verb: str) -> Iterator[list[str]]:
    """Statements of ``verb`` (SELECT, UPDATE) on the sessions table run inside the block."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        text = " ".join(statement.split()).upper()
        if text.startswith(verb) and "SESSIONS" in text:
            seen.append(text)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before)


# ------------------------------------------------------------------------- creation


async def test_a_new_session_authenticates(db: Database, user_id: int, clock: FakeClock) -> None:
    service = make_service(db, clock)
    token = await new_session(service, user_id)
    record = await service.authenticate(token)
    assert record.user_id == user_id
    assert not record.is_revoked


async def test_the_token_is_random_and_long(db: Database, user_id: int, clock: FakeClock) -> None:
    service = make_service(db, clock)
    tokens = {await new_session(service, user_id) for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert len(token) >= 32
        assert "alice" not in token


async def test_only_a_digest_of_the_token_is_stored(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock)
    token = await new_session(service, user_id)
    (row,) = await stored(db)
    assert row.id == session_digest(token) == hashlib.sha256(token.encode()).hexdigest()
    for value in (row.id, str(row.user_id)):
        assert token not in value


async def test_the_absolute_lifetime_is_stored(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock, absolute=300)
    await new_session(service, user_id)
    (row,) = await stored(db)
    assert row.created_at == datetime.fromtimestamp(START, UTC)
    assert row.last_seen_at == row.created_at
    assert (row.expires_at - row.created_at).total_seconds() == 300
    assert service.absolute_seconds == 300


@pytest.mark.parametrize(
    "token",
    ["", "x", "not-a-session", "A" * 43, "A" * 129, "A" * 10_000, "é" * 43, "\ud800" * 10],
    ids=["empty", "one", "words", "right-length", "129", "ten-k", "non-ascii", "surrogates"],
)
async def test_unknown_or_junk_tokens_are_refused(
    db: Database, user_id: int, clock: FakeClock, token: str
) -> None:
    service = make_service(db, clock)
    await new_session(service, user_id)
    with pytest.raises(InvalidSession):
        await service.authenticate(token)


async def test_junk_longer_than_a_token_is_refused_without_a_lookup(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock)
    with counting(db, "SELECT") as selects, pytest.raises(InvalidSession):
        await service.authenticate("A" * 10_000)
    assert selects == []


# -------------------------------------------------------------------------- lifetimes


async def test_an_idle_session_expires(db: Database, user_id: int, clock: FakeClock) -> None:
    service = make_service(db, clock, idle=60, absolute=3600)
    token = await new_session(service, user_id)
    clock.at(59)
    await service.authenticate(token)
    clock.at(59 + 61)
    with pytest.raises(InvalidSession):
        await service.authenticate(token)


async def test_an_untouched_session_expires_just_after_its_idle_time(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock, idle=60, absolute=3600, touch_every=3600)
    token = await new_session(service, user_id)
    clock.at(61)
    with pytest.raises(InvalidSession):
        await service.authenticate(token)


async def test_activity_keeps_a_session_alive_past_its_idle_time(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock, idle=60, absolute=3600, touch_every=30)
    token = await new_session(service, user_id)
    for offset in range(40, 401, 40):
        clock.at(offset)
        await service.authenticate(token)
    clock.at(400 + 61)
    with pytest.raises(InvalidSession):
        await service.authenticate(token)


async def test_the_absolute_lifetime_ends_even_an_active_session(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock, idle=60, absolute=300, touch_every=30)
    token = await new_session(service, user_id)
    for offset in (50, 100, 150, 200, 250, 299):
        clock.at(offset)
        await service.authenticate(token)
    clock.at(300)
    with pytest.raises(InvalidSession):
        await service.authenticate(token)
    clock.at(301)
    with pytest.raises(InvalidSession):
        await service.authenticate(token)


async def test_an_expired_session_stays_expired(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock, idle=60, absolute=3600)
    token = await new_session(service, user_id)
    clock.at(120)
    with pytest.raises(InvalidSession):
        await service.authenticate(token)
    clock.at(121)
    with pytest.raises(InvalidSession):
        await service.authenticate(token)


# ---------------------------------------------------------------------- touch throttle


async def test_last_seen_is_written_at_most_once_per_touch_interval(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock, idle=600, absolute=3600, touch_every=60)
    token = await new_session(service, user_id)
    with counting(db, "UPDATE") as updates:
        for offset in (1, 10, 30, 59, 60):
            clock.at(offset)
            for _ in range(5):
                await service.authenticate(token)
    assert updates == []
    (row,) = await stored(db)
    assert row.last_seen_at == datetime.fromtimestamp(START, UTC)

    with counting(db, "UPDATE") as updates:
        clock.at(61)
        for _ in range(5):
            await service.authenticate(token)
    assert len(updates) == 1
    (row,) = await stored(db)
    assert row.last_seen_at == datetime.fromtimestamp(START + 61, UTC)

    with counting(db, "UPDATE") as updates:
        for offset in (62, 100, 121):
            clock.at(offset)
            await service.authenticate(token)
    assert updates == []
    clock.at(122)
    with counting(db, "UPDATE") as updates:
        await service.authenticate(token)
    assert len(updates) == 1


async def test_a_burst_of_requests_reads_and_touches_a_session_once(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    """Twenty requests of one session arriving together, past the touch interval and with the
    cache cold: one SELECT and one UPDATE, not twenty of each (each was a transaction that could
    time out on SQLite's lock under load)."""
    service = make_service(db, clock, idle=600, absolute=3600, touch_every=60, ttl=30.0)
    token = await new_session(service, user_id)
    clock.at(61)
    with counting(db, "SELECT") as selects, counting(db, "UPDATE") as updates:
        records = await asyncio.gather(*(service.authenticate(token) for _ in range(20)))
    assert {r.user_id for r in records} == {user_id}
    assert len(selects) == 1
    assert len(updates) == 1


async def test_a_touch_moves_the_idle_deadline(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock, idle=100, absolute=3600, touch_every=30)
    token = await new_session(service, user_id)
    clock.at(90)
    await service.authenticate(token)  # touched: 90 > 30
    clock.at(185)
    await service.authenticate(token)  # 95 s after the touch: still alive
    clock.at(185 + 101)
    with pytest.raises(InvalidSession):
        await service.authenticate(token)


# -------------------------------------------------------------------- revoke and cache


async def test_a_revoked_session_is_refused_at_once_on_this_worker(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock, ttl=60.0)
    token = await new_session(service, user_id)
    await service.authenticate(token)  # now cached for a minute
    assert await service.revoke(token, "alice")
    with pytest.raises(InvalidSession):
        await service.authenticate(token)


async def test_the_record_is_read_at_most_once_per_ttl(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock, ttl=60.0)
    token = await new_session(service, user_id)
    with counting(db, "SELECT") as selects:
        for _ in range(20):
            await service.authenticate(token)
    assert len(selects) == 1


async def test_a_revocation_by_another_worker_bites_within_the_ttl(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    service = make_service(db, clock, ttl=0.2)
    token = await new_session(service, user_id)
    await service.authenticate(token)
    async with db.transaction() as session:
        await session.execute(
            update(Session)
            .where(Session.id == session_digest(token))
            .values(revoked_at=datetime.fromtimestamp(START, UTC))
        )
    await asyncio.sleep(0.25)
    with pytest.raises(InvalidSession):
        await service.authenticate(token)


async def test_unknown_tokens_are_cached_too(db: Database, user_id: int, clock: FakeClock) -> None:
    service = make_service(db, clock, ttl=60.0)
    with counting(db, "SELECT") as selects:
        for _ in range(10):
            with pytest.raises(InvalidSession):
                await service.authenticate("A" * 43)
    assert len(selects) == 1


# ----------------------------------------------------------------------- live count


def counting_service(db: Database, clock: FakeClock, reported: list[int]) -> SessionService:
    return SessionService(
        db,
        AuditRecorder(db, Metrics()),
        idle_seconds=60,
        absolute_seconds=300,
        touch_every=30.0,
        ttl=0.0,
        clock=clock,
        report_live=reported.append,
    )


async def test_the_live_count_is_reported_after_each_create_and_end(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    reported: list[int] = []
    service = counting_service(db, clock, reported)
    first = await new_session(service, user_id)
    await new_session(service, user_id)
    assert reported == [1, 2]
    await service.revoke(first, "alice")
    assert reported == [1, 2, 1]
    assert await service.revoke(first, "alice") is False  # nothing ended: no count
    assert reported == [1, 2, 1]
    async with db.transaction() as session:
        ended = await service.revoke_user_sessions(session, user_id)
    await service.ended(ended)
    assert reported == [1, 2, 1, 0]


async def test_the_live_count_leaves_out_idle_and_expired_sessions(
    db: Database, user_id: int, clock: FakeClock
) -> None:
    reported: list[int] = []
    service = counting_service(db, clock, reported)
    await new_session(service, user_id)
    clock.at(50)
    kept = await new_session(service, user_id)
    clock.at(61)  # the first has been idle for more than 60 s
    await service.count_live()
    assert reported[-1] == 1
    for offset in range(90, 301, 30):  # used often enough never to be idle...
        clock.at(offset)
        await service.authenticate(kept)
    clock.at(350)  # ...but past its absolute lifetime of 300 s
    await service.count_live()
    assert reported[-1] == 0


async def test_a_failed_count_does_not_fail_the_login(
    db: Database, user_id: int, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: Any) -> int:
        raise RuntimeError("database gone after the commit")

    reported: list[int] = []
    service = counting_service(db, clock, reported)
    monkeypatch.setattr(SessionRepository, "count_live", broken)
    token = await new_session(service, user_id)
    assert reported == []
    assert (await service.authenticate(token)).user_id == user_id


# ----------------------------------------------------------------------- cookie names


def test_cookie_names_over_https_carry_the_host_prefix() -> None:
    assert cookie_names(secure=True) == ("__Host-bastion_session", "__Host-bastion_csrf")
    assert SECURE_PREFIX == "__Host-"


def test_cookie_names_over_plain_http_lose_the_prefix() -> None:
    assert cookie_names(secure=False) == (SESSION_COOKIE, CSRF_COOKIE)
    assert (SESSION_COOKIE, CSRF_COOKIE) == ("bastion_session", "bastion_csrf")
