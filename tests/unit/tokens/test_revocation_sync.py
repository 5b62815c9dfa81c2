"""RevocationSync: a revocation written by another worker or node reaches this one's list by
the next poll; a failed poll keeps what is known and is retried (SPEC §4.2, §7)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bastion.storage.db import Database
from bastion.storage.repositories.refresh_tokens import RefreshTokenRepository
from bastion.storage.repositories.users import UserRepository
from bastion.tokens.revocation import MemoryRevocationList
from bastion.tokens.revocation_sync import RevocationSync


async def another_node_denies(db: Database, jti: str, minutes: int = 15) -> None:
    async with db.transaction() as session:
        await RefreshTokenRepository(session).deny_access_token(
            jti, datetime.now(UTC) + timedelta(minutes=minutes)
        )


async def another_node_revokes_a_family(db: Database, family_id: str) -> None:
    async with db.transaction() as session:
        user = await UserRepository(session).create(f"u{family_id}", "$argon2id$x", ["user"])
        repo = RefreshTokenRepository(session)
        await repo.create_family(family_id, user.id, "items:read")
        await repo.revoke_family(family_id, datetime.now(UTC), "logout")


async def test_a_jti_denied_elsewhere_is_refused_here_after_the_next_poll(db: Database) -> None:
    revocations = MemoryRevocationList()
    sync = RevocationSync(db, revocations, access_ttl=900)
    await sync.load()
    assert not await revocations.is_revoked("jti-1", "sid-1")

    await another_node_denies(db, "jti-1")
    await another_node_revokes_a_family(db, "sid-2")
    await sync.poll()

    assert await revocations.is_revoked("jti-1", "sid-other")
    assert await revocations.is_revoked("jti-other", "sid-2")


async def test_a_restart_loads_what_is_still_in_force(db: Database) -> None:
    await another_node_denies(db, "live")
    await another_node_denies(db, "expired", minutes=-1)
    await another_node_revokes_a_family(db, "sid-1")
    revocations = MemoryRevocationList()

    await RevocationSync(db, revocations, access_ttl=900).load()

    assert await revocations.is_revoked("live", "-")
    assert await revocations.is_revoked("-", "sid-1")
    assert not await revocations.is_revoked("expired", "-")


async def test_a_row_written_with_a_clock_behind_ours_is_still_seen(db: Database) -> None:
    """The row's time is the writing node's clock: a node 5 s behind must not slip past."""
    now = [datetime.now(UTC).timestamp() + 5.0]
    revocations = MemoryRevocationList()
    sync = RevocationSync(db, revocations, access_ttl=900, clock=lambda: now[0])
    await sync.load()
    await sync.poll()
    now[0] += 0.5

    await another_node_denies(db, "from-a-slow-clock")
    await sync.poll()

    assert await revocations.is_revoked("from-a-slow-clock", "-")


async def test_polling_survives_a_database_failure_and_picks_up_afterwards(
    db: Database, tmp_path: Path
) -> None:
    failures: list[None] = []
    broken = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    (tmp_path / "missing" / "x.db").unlink()  # a database with no tables: every poll fails
    revocations = MemoryRevocationList()
    sync = RevocationSync(
        broken, revocations, access_ttl=900, interval=0.01, on_failure=lambda: failures.append(None)
    )
    running = asyncio.create_task(sync.run())
    await asyncio.sleep(0.1)
    assert len(failures) >= 2
    assert not running.done(), "a failed poll must not stop the polling"
    running.cancel()
    await broken.dispose()
