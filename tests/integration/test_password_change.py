"""``POST /auth/password`` (SPEC §4.2): a changed password ends every earlier token of the user."""

from __future__ import annotations

import pytest

from tests.conftest import STRONG_PASSWORD, Harness
from tests.integration.helpers import (
    assert_invalid_token,
    assert_no_credentials_challenge,
    assert_oauth_error,
    assert_problem,
    bearer,
    error_fields,
    password_login,
    refresh,
)

NEW_PASSWORD = "a different and long passphrase"


async def change(
    harness: Harness, access_token: str, current: str, new: str
) -> tuple[int, dict[str, object] | None]:
    response = await harness.client.post(
        "/auth/password",
        json={"current_password": current, "new_password": new},
        headers=bearer(access_token),
    )
    return response.status_code, (response.json() if response.content else None)


async def test_a_wrong_current_password_is_403(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    response = await harness.client.post(
        "/auth/password",
        json={"current_password": "not my password at all", "new_password": NEW_PASSWORD},
        headers=bearer(tokens["access_token"]),
    )

    assert_problem(response, 403)
    assert "not my password at all" not in response.text
    # Nothing changed: the old password still logs in, the token still works.
    assert (await password_login(harness, "alice", STRONG_PASSWORD)).status_code == 200
    me = await harness.client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200


@pytest.mark.parametrize(
    "weak",
    ["short", "password1234", "PASSWORD1234", "alice-is-my-name", "x" * 257],
    ids=["too-short", "common", "common-other-case", "contains-username", "too-long"],
)
async def test_a_weak_new_password_is_422_naming_new_password(harness: Harness, weak: str) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    response = await harness.client.post(
        "/auth/password",
        json={"current_password": STRONG_PASSWORD, "new_password": weak},
        headers=bearer(tokens["access_token"]),
    )

    body = assert_problem(response, 422)
    assert "new_password" in error_fields(body)
    assert weak not in response.text
    assert STRONG_PASSWORD not in response.text
    assert (await password_login(harness, "alice", STRONG_PASSWORD)).status_code == 200


async def test_a_changed_password_ends_every_earlier_token_of_the_user(harness: Harness) -> None:
    await harness.create_user("alice")
    await harness.create_user("bob")
    caller = await harness.login("alice")
    other_device = await harness.login("alice")
    rotated = await harness.login("alice")
    rotated = (await refresh(harness, rotated["refresh_token"])).json()
    bob = await harness.login("bob")

    response = await harness.client.post(
        "/auth/password",
        json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(caller["access_token"]),
    )

    assert response.status_code == 204, response.text
    assert response.content == b""
    for tokens in (caller, other_device, rotated):
        me = await harness.client.get("/auth/me", headers=bearer(tokens["access_token"]))
        assert_invalid_token(me)
        assert_oauth_error(await refresh(harness, tokens["refresh_token"]), "invalid_grant")
    # Other users are untouched.
    assert (await harness.client.get("/auth/me", headers=bearer(bob["access_token"]))).is_success
    assert (await refresh(harness, bob["refresh_token"])).status_code == 200


async def test_after_a_change_the_new_password_logs_in_and_the_old_one_does_not(
    harness: Harness,
) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")
    status, _ = await change(harness, tokens["access_token"], STRONG_PASSWORD, NEW_PASSWORD)
    assert status == 204

    old = await password_login(harness, "alice", STRONG_PASSWORD)
    new = await password_login(harness, "alice", NEW_PASSWORD)

    assert_oauth_error(old, "invalid_grant")
    assert new.status_code == 200, new.text
    me = await harness.client.get("/auth/me", headers=bearer(new.json()["access_token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert (await refresh(harness, new.json()["refresh_token"])).status_code == 200


async def test_password_change_needs_credentials(harness: Harness) -> None:
    response = await harness.client.post(
        "/auth/password",
        json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert response.status_code == 401
    assert_no_credentials_challenge(response)


async def test_password_change_is_a_json_route(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    response = await harness.client.post(
        "/auth/password",
        data={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(tokens["access_token"]),
    )

    assert_problem(response, 415)


@pytest.mark.parametrize(
    "body",
    [
        {"new_password": NEW_PASSWORD},
        {"current_password": STRONG_PASSWORD},
        {"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD, "user_id": 2},
    ],
    ids=["no-current", "no-new", "unknown-field"],
)
async def test_password_change_validates_its_body(
    harness: Harness, body: dict[str, object]
) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    response = await harness.client.post(
        "/auth/password", json=body, headers=bearer(tokens["access_token"])
    )

    problem = assert_problem(response, 422)
    assert STRONG_PASSWORD not in response.text
    assert NEW_PASSWORD not in response.text
    assert problem["errors"]
