"""The refresh-token grant: rotation, reuse detection and scope narrowing (SPEC §4.2)."""

from __future__ import annotations

import pytest

from tests.conftest import Harness
from tests.integration.helpers import (
    USER_SCOPES,
    assert_invalid_token,
    assert_oauth_error,
    bearer,
    claims_of,
    refresh,
    scope_set,
    set_user,
)


async def test_refresh_answers_a_new_pair_of_the_same_family(harness: Harness) -> None:
    user_id = await harness.create_user("alice")
    first = await harness.login("alice")

    response = await refresh(harness, first["refresh_token"])

    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["cache-control"]
    second = response.json()
    assert set(second) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert second["token_type"] == "Bearer"
    assert second["expires_in"] == 900
    assert scope_set(second["scope"]) == USER_SCOPES
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    old_claims, new_claims = claims_of(first["access_token"]), claims_of(second["access_token"])
    assert new_claims["sid"] == old_claims["sid"]
    assert new_claims["jti"] != old_claims["jti"]
    assert new_claims["sub"] == str(user_id)
    me = await harness.client.get("/auth/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "alice"


async def test_the_used_refresh_token_is_dead(harness: Harness) -> None:
    await harness.create_user("alice")
    first = await harness.login("alice")
    assert (await refresh(harness, first["refresh_token"])).status_code == 200

    again = await refresh(harness, first["refresh_token"])

    assert_oauth_error(again, "invalid_grant")


async def test_a_chain_of_refreshes_stays_in_one_family(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")
    sid = claims_of(tokens["access_token"])["sid"]

    for _ in range(3):
        response = await refresh(harness, tokens["refresh_token"])
        assert response.status_code == 200, response.text
        tokens = response.json()
        assert claims_of(tokens["access_token"])["sid"] == sid

    me = await harness.client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200


async def test_reusing_a_refresh_token_revokes_the_whole_family(harness: Harness) -> None:
    await harness.create_user("alice")
    first = await harness.login("alice")
    second = (await refresh(harness, first["refresh_token"])).json()

    reuse = await refresh(harness, first["refresh_token"])

    assert_oauth_error(reuse, "invalid_grant")
    assert_oauth_error(await refresh(harness, second["refresh_token"]), "invalid_grant")
    for access in (first["access_token"], second["access_token"]):
        assert_invalid_token(await harness.client.get("/auth/me", headers=bearer(access)))


async def test_reuse_leaves_the_users_other_logins_alone(harness: Harness) -> None:
    await harness.create_user("alice")
    stolen = await harness.login("alice")
    other = await harness.login("alice")
    await refresh(harness, stolen["refresh_token"])
    await refresh(harness, stolen["refresh_token"])

    response = await refresh(harness, other["refresh_token"])

    assert response.status_code == 200, response.text


async def test_refresh_may_narrow_the_scope(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    response = await refresh(harness, tokens["refresh_token"], scope="items:read")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "items:read"
    assert claims_of(body["access_token"])["scope"] == "items:read"
    headers = bearer(body["access_token"])
    assert (await harness.client.get("/items", headers=headers)).status_code == 200
    create = await harness.client.post("/items", json={"name": "x"}, headers=headers)
    assert create.status_code == 403


@pytest.mark.parametrize("requested", ["items:read items:write", "items:write", "admin"])
async def test_refresh_may_not_widen_the_scope(harness: Harness, requested: str) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice", scope="items:read")

    response = await refresh(harness, tokens["refresh_token"], scope=requested)

    assert_oauth_error(response, "invalid_scope")


async def test_refresh_without_scope_keeps_the_granted_scope(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice", scope="items:read keys:manage")

    response = await refresh(harness, tokens["refresh_token"])

    assert response.status_code == 200, response.text
    assert scope_set(response.json()["scope"]) == {"items:read", "keys:manage"}


@pytest.mark.parametrize("token", ["not-a-refresh-token", "a" * 43, "x.y.z"])
async def test_an_unknown_refresh_token_is_invalid_grant(harness: Harness, token: str) -> None:
    await harness.create_user("alice")
    await harness.login("alice")

    assert_oauth_error(await refresh(harness, token), "invalid_grant")


async def test_an_access_token_is_not_a_refresh_token(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    assert_oauth_error(await refresh(harness, tokens["access_token"]), "invalid_grant")


async def test_a_disabled_user_cannot_refresh(harness: Harness) -> None:
    user_id = await harness.create_user("alice")
    tokens = await harness.login("alice")
    await set_user(harness, user_id, disabled=True)

    assert_oauth_error(await refresh(harness, tokens["refresh_token"]), "invalid_grant")
