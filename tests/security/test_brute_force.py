"""Brute-force lockout (SPEC §5): five failures in 15 minutes lock an account name, and the
lock looks the same for real and unknown accounts, right and wrong passwords."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from bastion.storage.models import AuditEventRow
from tests.conftest import STRONG_PASSWORD, TEST_SECRET, Harness, make_settings, open_harness

WRONG = "definitely not the password"


def form(username: str, password: str) -> dict[str, str]:
    return {"grant_type": "password", "username": username, "password": password}


async def fail_logins(h: Harness, username: str, times: int) -> list[int]:
    return [
        (await h.client.post("/auth/token", data=form(username, WRONG))).status_code
        for _ in range(times)
    ]


async def test_five_failures_lock_the_account(harness: Harness) -> None:
    await harness.create_user("alice")
    assert await fail_logins(harness, "alice", 5) == [400] * 5
    locked = await harness.client.post("/auth/token", data=form("alice", STRONG_PASSWORD))
    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    assert int(locked.headers["retry-after"]) >= 1


async def test_lock_is_identical_for_real_and_unknown_accounts(harness: Harness) -> None:
    await harness.create_user("alice")
    await fail_logins(harness, "alice", 5)
    await fail_logins(harness, "nobody-here", 5)
    real = await harness.client.post("/auth/token", data=form("alice", STRONG_PASSWORD))
    unknown = await harness.client.post("/auth/token", data=form("nobody-here", WRONG))
    assert real.status_code == unknown.status_code == 429
    assert real.content == unknown.content
    assert real.headers["retry-after"] == unknown.headers["retry-after"]


async def test_other_spellings_of_a_locked_name_are_locked_too(harness: Harness) -> None:
    await harness.create_user("alice")
    await fail_logins(harness, "ALICE", 5)
    locked = await harness.client.post("/auth/token", data=form("Ａlice", STRONG_PASSWORD))
    assert locked.status_code == 429


async def test_a_success_resets_the_failure_count(harness: Harness) -> None:
    await harness.create_user("alice")
    assert await fail_logins(harness, "alice", 4) == [400] * 4
    await harness.login("alice")
    assert await fail_logins(harness, "alice", 4) == [400] * 4
    await harness.login("alice")


async def test_locks_grow_longer_each_time(database_url: str, tmp_path: Path) -> None:
    now = [1_000_000.0]
    settings = make_settings(database_url, tmp_path)
    async with open_harness(settings) as h:
        h.bastion.lockout._clock = lambda: now[0]
        await h.create_user("alice")
        await fail_logins(h, "alice", 5)
        first = await h.client.post("/auth/token", data=form("alice", WRONG))
        now[0] += int(first.headers["retry-after"]) + 1
        await fail_logins(h, "alice", 5)
        second = await h.client.post("/auth/token", data=form("alice", WRONG))
        assert int(second.headers["retry-after"]) > int(first.headers["retry-after"])


async def test_a_burst_timed_around_the_window_boundary_is_locked(
    database_url: str, tmp_path: Path
) -> None:
    """The attack on a fixed window: one failure to start it, then a burst just before and
    just after it resets (1 at t=0, 3 at t=899, 4 at t=901). Seven guesses in two seconds must
    lock (SPEC §5: 5 failures within 900 s), and the lock must look the same for the real
    password as for a wrong one."""
    now = [3_000_000.0]
    async with open_harness(make_settings(database_url, tmp_path)) as h:
        h.bastion.lockout._clock = lambda: now[0]
        await h.create_user("alice")
        assert await fail_logins(h, "alice", 1) == [400]
        now[0] += 899
        assert await fail_logins(h, "alice", 3) == [400] * 3
        now[0] += 2
        assert await fail_logins(h, "alice", 4) == [400, 400, 429, 429]
        right = await h.client.post("/auth/token", data=form("alice", STRONG_PASSWORD))
        wrong = await h.client.post("/auth/token", data=form("alice", WRONG))
        assert right.status_code == wrong.status_code == 429
        assert right.content == wrong.content


async def test_lock_expires_after_its_back_off(database_url: str, tmp_path: Path) -> None:
    now = [2_000_000.0]
    async with open_harness(make_settings(database_url, tmp_path)) as h:
        h.bastion.lockout._clock = lambda: now[0]
        await h.create_user("alice")
        await fail_logins(h, "alice", 5)
        assert (
            await h.client.post("/auth/token", data=form("alice", STRONG_PASSWORD))
        ).status_code == 429
        now[0] += 61
        await h.login("alice")


async def test_wrong_current_password_counts_toward_the_lock(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    for _ in range(5):
        response = await harness.client.post(
            "/auth/password",
            json={"current_password": WRONG, "new_password": "another fine passphrase"},
            headers=headers,
        )
        assert response.status_code == 403
    locked = await harness.client.post("/auth/token", data=form("alice", STRONG_PASSWORD))
    assert locked.status_code == 429


async def test_bastion_unlock_lifts_the_lock(database_url: str, tmp_path: Path) -> None:
    """The real command, in its own process, lifts a lock held by the running server."""
    async with open_harness(make_settings(database_url, tmp_path)) as h:
        await h.create_user("alice")
        await fail_logins(h, "alice", 5)
        assert (
            await h.client.post("/auth/token", data=form("alice", STRONG_PASSWORD))
        ).status_code == 429
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        env.update(BASTION_DATABASE_URL=database_url, BASTION_SECRET_KEY=TEST_SECRET)
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bastion", "unlock", "ALICE"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "unlocked 'alice'" in result.stdout
        await h.login("alice")
        # The same event as the admin API's unlock (SPEC §6), with no request behind it.
        async with h.bastion.db.transaction() as session:
            rows = (
                await session.execute(
                    select(AuditEventRow).where(AuditEventRow.type == "user_changed")
                )
            ).scalars()
            unlocked = [(r.actor, r.subject, json.loads(r.details), r.ip) for r in rows]
        assert unlocked == [(None, "alice", {"unlocked": True, "via": "cli"}, None)]
