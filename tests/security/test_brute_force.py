"""Brute-force lockout (SPEC §5): five failures in 15 minutes lock an account name, and the
lock looks the same for real and unknown accounts, right and wrong passwords."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

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
