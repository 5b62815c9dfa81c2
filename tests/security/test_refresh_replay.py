"""Refresh-token rotation and reuse detection (SPEC §4.2, RFC 9700 §4.14.2).

A stolen refresh token that is replayed after its owner used it must not only fail: the whole
family dies, the tokens the owner got from the rotation included, and the access tokens of
that family stop working at once. Runs on SQLite and PostgreSQL (the ``harness`` fixture).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import Harness
from tests.security.conftest import Account, new_account
from tests.security.helpers import assert_invalid_token, assert_no_store, assert_oauth_error, bearer

CONCURRENT_REFRESHES = 6
"""Kept under the login limit (10/minute per IP, SPEC §5) together with the login itself."""


async def refresh(harness: Harness, token: str, **extra: str) -> httpx.Response:
    return await harness.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": token, **extra}
    )


async def me(harness: Harness, access_token: str) -> httpx.Response:
    return await harness.client.get("/secure-data", headers=bearer(access_token))


def token_pair(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["token_type"] == "Bearer"
    assert body["access_token"]
    assert body["refresh_token"]
    assert_no_store(response)
    return body


async def test_refresh_token_works_once_and_rotates(harness: Harness, alice: Account) -> None:
    first = token_pair(await refresh(harness, alice.refresh_token))
    assert first["refresh_token"] != alice.refresh_token
    assert (await me(harness, first["access_token"])).status_code == 200


async def test_replayed_refresh_token_gets_invalid_grant(harness: Harness, alice: Account) -> None:
    token_pair(await refresh(harness, alice.refresh_token))
    replay = await refresh(harness, alice.refresh_token)
    body = assert_oauth_error(replay, "invalid_grant")
    assert alice.refresh_token not in replay.text
    assert body.get("error_description")


async def test_replay_kills_the_refresh_token_issued_by_the_first_use(
    harness: Harness, alice: Account
) -> None:
    rotated = token_pair(await refresh(harness, alice.refresh_token))
    assert_oauth_error(await refresh(harness, alice.refresh_token), "invalid_grant")
    assert_oauth_error(await refresh(harness, rotated["refresh_token"]), "invalid_grant")


async def test_replay_kills_every_access_token_of_the_family(
    harness: Harness, alice: Account
) -> None:
    rotated = token_pair(await refresh(harness, alice.refresh_token))
    assert (await me(harness, rotated["access_token"])).status_code == 200
    assert_oauth_error(await refresh(harness, alice.refresh_token), "invalid_grant")
    for access_token in (alice.access_token, rotated["access_token"]):
        assert_invalid_token(await me(harness, access_token), access_token)


async def test_replay_of_an_older_generation_kills_the_newest_one(
    harness: Harness, alice: Account
) -> None:
    second = token_pair(await refresh(harness, alice.refresh_token))
    third = token_pair(await refresh(harness, second["refresh_token"]))
    assert_oauth_error(await refresh(harness, alice.refresh_token), "invalid_grant")
    assert_oauth_error(await refresh(harness, third["refresh_token"]), "invalid_grant")
    assert_invalid_token(await me(harness, third["access_token"]))


async def test_replay_does_not_touch_another_login_of_the_same_user(
    harness: Harness, alice: Account
) -> None:
    other_login = await harness.login("alice")
    token_pair(await refresh(harness, alice.refresh_token))
    assert_oauth_error(await refresh(harness, alice.refresh_token), "invalid_grant")
    assert (await me(harness, other_login["access_token"])).status_code == 200
    token_pair(await refresh(harness, other_login["refresh_token"]))


async def test_replay_does_not_touch_another_user(harness: Harness, alice: Account) -> None:
    mallory = await new_account(harness, "mallory")
    token_pair(await refresh(harness, alice.refresh_token))
    assert_oauth_error(await refresh(harness, alice.refresh_token), "invalid_grant")
    assert (await me(harness, mallory.access_token)).status_code == 200


async def test_concurrent_refreshes_with_one_token_give_exactly_one_new_pair(
    harness: Harness, alice: Account
) -> None:
    responses = await asyncio.gather(
        *(refresh(harness, alice.refresh_token) for _ in range(CONCURRENT_REFRESHES))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, [(r.status_code, r.text) for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert_oauth_error(response, "invalid_grant")


async def test_concurrent_replay_is_reuse_and_ends_the_family(
    harness: Harness, alice: Account
) -> None:
    """The losers of the race presented a token that had just been used: reuse, so the pair
    the winner got dies too (the legitimate client logs in again; the thief gets nothing)."""
    responses = await asyncio.gather(
        *(refresh(harness, alice.refresh_token) for _ in range(CONCURRENT_REFRESHES))
    )
    winner = next(r for r in responses if r.status_code == 200).json()
    assert_oauth_error(await refresh(harness, winner["refresh_token"]), "invalid_grant")
    assert_invalid_token(await me(harness, winner["access_token"]))


async def test_unknown_refresh_token_gets_invalid_grant(harness: Harness, alice: Account) -> None:
    for token in ("x" * 43, "definitely-not-issued", alice.access_token):
        response = await refresh(harness, token)
        assert_oauth_error(response, "invalid_grant")
        assert token not in response.text


async def test_refresh_after_the_family_was_revoked_gets_invalid_grant(
    harness: Harness, alice: Account
) -> None:
    revoked = await harness.client.post("/auth/revoke", data={"token": alice.refresh_token})
    assert revoked.status_code == 200
    assert_oauth_error(await refresh(harness, alice.refresh_token), "invalid_grant")
