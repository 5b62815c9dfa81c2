"""Finding out which accounts exist through the token endpoint (SPEC §4.2, OWASP API2).

Wrong password, unknown user and disabled user must give the same status, the same bytes and
take about the same time. This module runs Argon2 with the production (OWASP) parameters so
that a missing dummy hash for unknown users would show as a large time difference.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from bastion.settings import BastionSettings
from bastion.storage.models import User
from tests.conftest import STRONG_PASSWORD, Harness, make_settings
from tests.security.conftest import Account
from tests.security.helpers import assert_invalid_token, assert_oauth_error

TOKEN = "/auth/token"
WRONG_PASSWORD = "Wrong-Password-Marker-5d0c"
COMPARED_HEADERS = ("content-type", "content-length", "cache-control", "www-authenticate")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> BastionSettings:
    """Overrides the suite's ``settings`` for this module: Argon2 at its production cost."""
    return make_settings(database_url, tmp_path, argon2_time_cost=2, argon2_memory_cost=19_456)


def password_form(username: str, password: str) -> dict[str, str]:
    return {"grant_type": "password", "username": username, "password": password}


async def grant(harness: Harness, username: str, password: str) -> httpx.Response:
    return await harness.client.post(TOKEN, data=password_form(username, password))


async def disable(harness: Harness, user_id: int) -> None:
    async with harness.bastion.db.transaction() as session:
        await session.execute(update(User).where(User.id == user_id).values(disabled=True))
    harness.bastion.users.invalidate(user_id)


def assert_same_answer(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code
    assert a.content == b.content
    for header in COMPARED_HEADERS:
        assert a.headers.get(header) == b.headers.get(header), header


async def test_wrong_password_and_unknown_user_get_byte_identical_answers(
    harness: Harness, alice: Account
) -> None:
    wrong = await grant(harness, "alice", WRONG_PASSWORD)
    unknown = await grant(harness, "nobody-here", WRONG_PASSWORD)
    assert_oauth_error(wrong, "invalid_grant")
    assert_same_answer(wrong, unknown)
    assert WRONG_PASSWORD not in wrong.text


async def test_malformed_username_answers_like_an_unknown_one(
    harness: Harness, alice: Account
) -> None:
    reference = await grant(harness, "nobody-here", WRONG_PASSWORD)
    for name in ("ab", "al\x00ice", "     ", "a" * 300):
        assert_same_answer(await grant(harness, name, WRONG_PASSWORD), reference)


async def test_username_case_and_width_variants_reach_the_same_account(
    harness: Harness, alice: Account
) -> None:
    """``ALICE`` and fullwidth ``ａｌｉｃｅ`` are Alice (NFKC + case-fold), not unknown users
    that an attacker could tell apart from her by their answers."""
    for name in ("ALICE", "\uff41\uff4c\uff49\uff43\uff45"):
        response = await grant(harness, name, STRONG_PASSWORD)
        assert response.status_code == 200, (name, response.text)


async def test_disabled_user_with_the_right_password_gets_invalid_grant(
    harness: Harness, alice: Account
) -> None:
    reference = await grant(harness, "alice", WRONG_PASSWORD)
    await disable(harness, alice.id)
    response = await grant(harness, "alice", STRONG_PASSWORD)
    assert_oauth_error(response, "invalid_grant")
    assert_same_answer(response, reference)


async def test_disabled_user_loses_access_and_refresh_tokens_at_once(
    harness: Harness, alice: Account
) -> None:
    await disable(harness, alice.id)
    response = await harness.client.get("/secure-data", headers=alice.headers)
    assert_invalid_token(response, alice.access_token)
    refreshed = await harness.client.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": alice.refresh_token}
    )
    assert_oauth_error(refreshed, "invalid_grant")


async def _timed(harness: Harness, username: str, password: str) -> float:
    start = time.perf_counter()
    response = await grant(harness, username, password)
    elapsed = time.perf_counter() - start
    assert response.status_code == 400
    return elapsed


async def test_unknown_user_takes_about_as_long_as_a_wrong_password(harness: Harness) -> None:
    """Not a precise timing test: with Argon2 at ~30 ms, skipping the hash for unknown users
    would make them several times faster; the bound tolerates ordinary noise."""
    await harness.create_user("alice")
    await _timed(harness, "warm-up-unknown", WRONG_PASSWORD)
    wrong: list[float] = []
    unknown: list[float] = []
    for n in range(4):
        wrong.append(await _timed(harness, "alice", WRONG_PASSWORD))
        unknown.append(await _timed(harness, f"nobody-{n}", WRONG_PASSWORD))
    fast, slow = sorted([statistics.median(wrong), statistics.median(unknown)])
    timings: dict[str, Any] = {"wrong": wrong, "unknown": unknown}
    assert fast >= 0.5 * slow, timings


async def test_over_long_password_for_a_real_user_answers_like_an_unknown_user(
    harness: Harness, alice: Account
) -> None:
    long_password = "p" * 5000
    real = await grant(harness, "alice", long_password)
    unknown = await grant(harness, "nobody-here", long_password)
    assert_same_answer(real, unknown)
    assert long_password not in real.text
