"""The repositories against real databases (SQLite and PostgreSQL): ownership scoping, refresh
token consumption, revocation records, and UTC timestamps (SPEC §4.2, §4.5, §7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bastion.storage.models import Item, User
from bastion.storage.repositories.items import ItemRepository
from bastion.storage.repositories.refresh_tokens import RefreshTokenRepository
from bastion.storage.repositories.users import UsernameTaken, UserRepository
from bastion.tokens.refresh import new_family_id, new_refresh_token
from tests.conftest import Harness


async def make_user(harness: Harness, name: str) -> int:
    return await harness.create_user(name)


# ------------------------------------------------------------------------------ users


async def test_a_duplicate_username_is_username_taken_and_the_session_survives(
    harness: Harness,
) -> None:
    async with harness.bastion.db.transaction() as session:
        repo = UserRepository(session)
        first = await repo.create("alice", "hash", ["user"])
        with pytest.raises(UsernameTaken):
            await repo.create("alice", "other-hash", ["user"])
        second = await repo.create("bob", "hash", ["user", "admin"])
        assert first.id != second.id

    async with harness.bastion.db.transaction() as session:
        repo = UserRepository(session)
        alice = await repo.get_by_username("alice")
        bob = await repo.get_by_username("bob")
        assert alice is not None
        assert alice.password_hash == "hash"
        assert bob is not None
        assert bob.role_set == {"user", "admin"}
        assert await repo.get_by_username("carol") is None


async def test_users_page_in_id_order(harness: Harness) -> None:
    ids = [await make_user(harness, f"user{n}") for n in range(5)]

    async with harness.bastion.db.transaction() as session:
        repo = UserRepository(session)
        first = await repo.list_page(after_id=None, limit=2)
        rest = await repo.list_page(after_id=first[-1].id, limit=10)

    assert [u.id for u in first] + [u.id for u in rest] == ids


async def test_timestamps_come_back_aware_and_in_utc(harness: Harness) -> None:
    user_id = await make_user(harness, "alice")
    at = datetime(2026, 11, 23, 18, 0, tzinfo=UTC) + timedelta(microseconds=0)

    async with harness.bastion.db.transaction() as session:
        user = await UserRepository(session).get(user_id)
        assert user is not None
        await UserRepository(session).end_credentials(user, at)

    async with harness.bastion.db.transaction() as session:
        user = (await session.execute(select(User).where(User.id == user_id))).scalar_one()
        assert user.tokens_valid_after == at
        assert user.tokens_valid_after.utcoffset() == timedelta(0)
        assert user.created_at.utcoffset() == timedelta(0)


# ------------------------------------------------------------------------------ items


async def test_items_are_scoped_by_owner(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")

    async with harness.bastion.db.transaction() as session:
        repo = ItemRepository(session)
        item = await repo.create(alice, "private", None)
        item_id = item.id
        for n in range(3):
            await repo.create(bob, f"bob {n}", "d")

    async with harness.bastion.db.transaction() as session:
        repo = ItemRepository(session)
        assert await repo.get_owned(bob, item_id) is None
        assert await repo.update_owned(bob, item_id, {"name": "stolen"}) is None
        assert await repo.delete_owned(bob, item_id) is False
        page, total = await repo.list_owned(alice, limit=10, offset=0)
        assert [i.id for i in page] == [item_id]
        assert total == 1
        page, total = await repo.list_owned(bob, limit=2, offset=1)
        assert [i.name for i in page] == ["bob 1", "bob 2"]
        assert total == 3

    async with harness.bastion.db.transaction() as session:
        stored = await session.get(Item, item_id)
        assert stored is not None
        assert stored.name == "private"
        assert stored.owner_id == alice
        assert await ItemRepository(session).delete_owned(alice, item_id) is True


# ----------------------------------------------------------------------- refresh tokens


async def new_family(harness: Harness, user_id: int, *, ttl: timedelta) -> tuple[str, str]:
    family_id = new_family_id()
    _, digest = new_refresh_token()
    async with harness.bastion.db.transaction() as session:
        repo = RefreshTokenRepository(session)
        await repo.create_family(family_id, user_id, "items:read")
        await repo.add_token(family_id, digest, datetime.now(UTC) + ttl)
    return family_id, digest


async def test_a_refresh_token_is_consumed_once(harness: Harness) -> None:
    user_id = await make_user(harness, "alice")
    family_id, digest = await new_family(harness, user_id, ttl=timedelta(days=1))
    now = datetime.now(UTC)

    async with harness.bastion.db.transaction() as session:
        first = await RefreshTokenRepository(session).consume(digest, now)
    async with harness.bastion.db.transaction() as session:
        second = await RefreshTokenRepository(session).consume(digest, now)
    async with harness.bastion.db.transaction() as session:
        unknown = await RefreshTokenRepository(session).consume("0" * 64, now)

    assert first.is_fresh
    assert not first.was_used
    assert first.family is not None
    assert first.family.id == family_id
    assert not second.is_fresh
    assert second.was_used
    assert second.family is not None
    assert second.family.id == family_id
    assert unknown.family is None
    assert not unknown.is_fresh
    assert not unknown.was_used


async def test_an_expired_refresh_token_is_not_fresh(harness: Harness) -> None:
    user_id = await make_user(harness, "alice")
    _, digest = await new_family(harness, user_id, ttl=timedelta(seconds=-1))

    async with harness.bastion.db.transaction() as session:
        found = await RefreshTokenRepository(session).consume(digest, datetime.now(UTC))

    assert not found.is_fresh
    assert found.is_expired
    assert not found.was_used


async def test_families_are_revoked_once_and_per_user(harness: Harness) -> None:
    alice = await make_user(harness, "alice")
    bob = await make_user(harness, "bob")
    a1, a1_digest = await new_family(harness, alice, ttl=timedelta(days=1))
    a2, _ = await new_family(harness, alice, ttl=timedelta(days=1))
    b1, _ = await new_family(harness, bob, ttl=timedelta(days=1))
    now = datetime.now(UTC)

    async with harness.bastion.db.transaction() as session:
        repo = RefreshTokenRepository(session)
        assert await repo.revoke_family(a1, now, "revoked") is True
        assert await repo.revoke_family(a1, now, "revoked") is False
        family = await repo.family_of_token(a1_digest)
        assert family is not None
        assert family.id == a1
    async with harness.bastion.db.transaction() as session:
        revoked = await RefreshTokenRepository(session).revoke_user_families(
            alice, now, "password_changed"
        )
    async with harness.bastion.db.transaction() as session:
        since = await RefreshTokenRepository(session).families_revoked_since(
            now - timedelta(seconds=5)
        )

    assert revoked == [a2]
    assert set(since) == {a1, a2}
    assert b1 not in since


async def test_denied_access_tokens_are_found_by_when_they_were_denied_until_expiry(
    harness: Harness,
) -> None:
    now = datetime.now(UTC)

    async with harness.bastion.db.transaction() as session:
        repo = RefreshTokenRepository(session)
        await repo.deny_access_token("live-jti", now + timedelta(minutes=15))
        await repo.deny_access_token("live-jti", now + timedelta(minutes=15))
        await repo.deny_access_token("old-jti", now - timedelta(seconds=1))
    async with harness.bastion.db.transaction() as session:
        repo = RefreshTokenRepository(session)
        denied = await repo.access_tokens_denied_since(now - timedelta(seconds=5), now)
        later = await repo.access_tokens_denied_since(now + timedelta(seconds=5), now)

    assert [jti for jti, _ in denied] == ["live-jti"]
    assert denied[0][1].utcoffset() == timedelta(0)
    assert later == []  # denied before the window asked for
