"""``GET /auth/me``, roles and scopes (SPEC §4.2, §4.7), and how fast a change to a user bites
on a live token (SPEC §3: within 1 s)."""

from __future__ import annotations

import asyncio

from tests.conftest import Harness
from tests.integration.helpers import (
    USER_SCOPES,
    assert_invalid_token,
    assert_no_credentials_challenge,
    assert_problem,
    bearer,
    set_user,
)

ADMIN_SCOPES = {"items:read", "items:write", "keys:manage", "metrics:read", "admin"}


async def test_me_describes_the_caller(harness: Harness) -> None:
    user_id = await harness.create_user("alice")
    tokens = await harness.login("alice")

    response = await harness.client.get("/auth/me", headers=bearer(tokens["access_token"]))

    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["cache-control"]
    body = response.json()
    assert set(body) == {"id", "username", "roles", "scopes", "auth"}
    assert body["id"] == user_id
    assert body["username"] == "alice"
    assert body["roles"] == ["user"]
    assert set(body["scopes"]) == USER_SCOPES
    assert len(body["scopes"]) == len(USER_SCOPES)
    assert body["auth"] == "bearer"


async def test_the_bearer_scheme_name_is_case_insensitive(harness: Harness) -> None:
    await harness.create_user("alice")
    token = (await harness.login("alice"))["access_token"]

    for scheme in ("bearer", "BEARER"):
        response = await harness.client.get(
            "/auth/me", headers={"Authorization": f"{scheme} {token}"}
        )
        assert response.status_code == 200, scheme


async def test_me_without_credentials_is_401_with_a_bare_challenge(harness: Harness) -> None:
    response = await harness.client.get("/auth/me")

    body = assert_problem(response, 401)
    assert_no_credentials_challenge(response)
    assert "no-store" in response.headers["cache-control"]
    assert "detail" in body


async def test_me_with_a_bad_token_is_401_invalid_token(harness: Harness) -> None:
    for token in ("garbage", "a.b.c", ""):
        response = await harness.client.get("/auth/me", headers=bearer(token))
        assert_invalid_token(response)
        assert_problem(response, 401)


async def test_an_admin_holds_every_scope(harness: Harness) -> None:
    await harness.create_user("root", admin=True)
    tokens = await harness.login("root")

    assert set(tokens["scope"].split()) >= ADMIN_SCOPES
    me = (await harness.client.get("/auth/me", headers=bearer(tokens["access_token"]))).json()
    assert set(me["roles"]) == {"user", "admin"}
    assert set(me["scopes"]) >= ADMIN_SCOPES


async def test_an_admin_may_ask_for_admin_scopes_only(harness: Harness) -> None:
    await harness.create_user("root", admin=True)

    tokens = await harness.login("root", scope="admin metrics:read")

    assert set(tokens["scope"].split()) == {"admin", "metrics:read"}


async def test_removing_a_role_takes_effect_on_a_live_token(harness: Harness) -> None:
    root_id = await harness.create_user("root", admin=True)
    headers = bearer((await harness.login("root"))["access_token"])
    assert "admin" in (await harness.client.get("/auth/me", headers=headers)).json()["scopes"]

    await set_user(harness, root_id, roles="user")
    harness.bastion.users.invalidate(root_id)

    me = await harness.client.get("/auth/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["roles"] == ["user"]
    assert set(me.json()["scopes"]) == USER_SCOPES


async def test_removing_every_role_leaves_a_live_token_without_scopes(harness: Harness) -> None:
    user_id = await harness.create_user("alice")
    headers = bearer((await harness.login("alice"))["access_token"])
    assert (await harness.client.get("/items", headers=headers)).status_code == 200

    await set_user(harness, user_id, roles="")
    harness.bastion.users.invalidate(user_id)

    response = await harness.client.get("/items", headers=headers)
    assert_problem(response, 403)
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert (await harness.client.get("/auth/me", headers=headers)).json()["scopes"] == []


async def test_disabling_or_demoting_a_user_bites_on_live_tokens_within_one_second(
    harness: Harness,
) -> None:
    """No cache invalidation here: the changes are made in the database behind this worker's
    back, as another worker or an operator would, and must still bite within 1 s (SPEC §3,
    §4.7)."""
    alice_id = await harness.create_user("alice")
    root_id = await harness.create_user("root", admin=True)
    await harness.create_user("bob")
    alice = bearer((await harness.login("alice"))["access_token"])
    root = bearer((await harness.login("root"))["access_token"])
    bob = bearer((await harness.login("bob"))["access_token"])
    assert (await harness.client.get("/auth/me", headers=alice)).status_code == 200
    assert "admin" in (await harness.client.get("/auth/me", headers=root)).json()["roles"]

    await set_user(harness, alice_id, disabled=True)
    await set_user(harness, root_id, roles="user")
    await asyncio.sleep(1.1)

    response = await harness.client.get("/auth/me", headers=alice)
    assert_invalid_token(response)
    assert_problem(response, 401)
    me = (await harness.client.get("/auth/me", headers=root)).json()
    assert me["roles"] == ["user"]
    assert "admin" not in me["scopes"]
    assert (await harness.client.get("/auth/me", headers=bob)).status_code == 200


async def test_a_disabled_user_is_refused_at_once_once_the_cache_is_told(
    harness: Harness,
) -> None:
    user_id = await harness.create_user("alice")
    headers = bearer((await harness.login("alice"))["access_token"])
    assert (await harness.client.get("/items", headers=headers)).status_code == 200

    await set_user(harness, user_id, disabled=True)
    harness.bastion.users.invalidate(user_id)

    assert_invalid_token(await harness.client.get("/items", headers=headers))
