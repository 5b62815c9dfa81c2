"""UserStateCache: at most one database read per user per ttl, invalidated on our own changes
(SPEC §3 "within 1 s", §8 no read per request)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from bastion.staleness import DEFAULT_TTL
from bastion.storage.db import Database
from bastion.storage.models import Base, User
from bastion.storage.repositories.users import UserRepository
from bastion.user_state import UserStateCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}")
    async with database.engine.begin() as conn:  # the tables alone; migrations are tested apart
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()


async def create_user(db: Database, username: str = "alice", roles: str = "user") -> int:
    async with db.transaction() as session:
        user = await UserRepository(session).create(username, "$argon2id$unused", roles.split())
        return user.id


async def change_row(db: Database, user_id: int, **values: object) -> None:
    """Change the user behind the cache's back, as another worker would."""
    async with db.transaction() as session:
        await session.execute(update(User).where(User.id == user_id).values(**values))


def test_the_default_staleness_leaves_room_within_the_promised_second() -> None:
    assert DEFAULT_TTL <= 0.5


async def test_the_state_reflects_the_user_row(db: Database) -> None:
    user_id = await create_user(db, "alice", "user admin")

    state = await UserStateCache(db).get(user_id)

    assert state is not None
    assert state.id == user_id
    assert state.username == "alice"
    assert state.roles == frozenset({"user", "admin"})
    assert state.is_disabled is False
    assert state.credentials_valid_after == 0.0


async def test_credentials_valid_after_is_the_epoch_second_of_the_row(db: Database) -> None:
    user_id = await create_user(db)
    cutoff = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await change_row(db, user_id, tokens_valid_after=cutoff)

    state = await UserStateCache(db).get(user_id)

    assert state is not None
    assert state.credentials_valid_after == cutoff.timestamp()


async def test_a_second_get_within_the_ttl_does_not_read_the_database(db: Database) -> None:
    clock = FakeClock()
    cache = UserStateCache(db, ttl=1.0, clock=clock)
    user_id = await create_user(db)
    await cache.get(user_id)

    await change_row(db, user_id, disabled=True, roles="user admin")
    clock.now += 0.9
    state = await cache.get(user_id)

    assert state is not None
    assert state.is_disabled is False  # the stale, cached value
    assert state.roles == frozenset({"user"})


async def test_a_get_after_the_ttl_sees_the_change(db: Database) -> None:
    clock = FakeClock()
    cache = UserStateCache(db, ttl=1.0, clock=clock)
    user_id = await create_user(db)
    await cache.get(user_id)

    await change_row(db, user_id, disabled=True, roles="user admin")
    clock.now += 1.0
    state = await cache.get(user_id)

    assert state is not None
    assert state.is_disabled is True
    assert state.roles == frozenset({"user", "admin"})


async def test_invalidate_forces_a_fresh_read(db: Database) -> None:
    clock = FakeClock()
    cache = UserStateCache(db, ttl=60.0, clock=clock)
    user_id = await create_user(db)
    await cache.get(user_id)
    await change_row(db, user_id, disabled=True)

    cache.invalidate(user_id)
    state = await cache.get(user_id)

    assert state is not None
    assert state.is_disabled is True


async def test_invalidating_an_unknown_user_is_harmless(db: Database) -> None:
    UserStateCache(db).invalidate(12345)


async def test_a_missing_user_is_none(db: Database) -> None:
    assert await UserStateCache(db).get(999) is None


async def test_a_deleted_user_becomes_none_after_the_ttl(db: Database) -> None:
    clock = FakeClock()
    cache = UserStateCache(db, ttl=1.0, clock=clock)
    user_id = await create_user(db)
    assert await cache.get(user_id) is not None

    async with db.transaction() as session:
        user = await session.get(User, user_id)
        await session.delete(user)
    clock.now += 1.5

    assert await cache.get(user_id) is None


async def test_entries_are_per_user(db: Database) -> None:
    clock = FakeClock()
    cache = UserStateCache(db, ttl=60.0, clock=clock)
    alice = await create_user(db, "alice")
    bob = await create_user(db, "bob")
    await cache.get(alice)
    await cache.get(bob)
    await change_row(db, bob, disabled=True)

    cache.invalidate(bob)

    alice_state, bob_state = await cache.get(alice), await cache.get(bob)
    assert alice_state is not None
    assert alice_state.username == "alice"
    assert bob_state is not None
    assert bob_state.is_disabled is True


async def test_the_cache_stays_bounded_and_still_answers_correctly(db: Database) -> None:
    clock = FakeClock()
    cache = UserStateCache(db, ttl=60.0, max_entries=2, clock=clock)
    ids = [await create_user(db, name) for name in ("alice", "bob", "carol")]
    for user_id in ids:
        await cache.get(user_id)
    await change_row(db, ids[0], disabled=True)

    # alice's entry was dropped when the cache filled, so this read is fresh.
    state = await cache.get(ids[0])

    assert state is not None
    assert state.is_disabled is True
