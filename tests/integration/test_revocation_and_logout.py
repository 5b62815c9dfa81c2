"""``POST /auth/revoke`` (RFC 7009) and ``POST /auth/logout`` (SPEC §4.2), and revocations
outliving a restart of the server."""

from __future__ import annotations

import pytest

from bastion.settings import BastionSettings
from tests.conftest import STRONG_PASSWORD, Harness
from tests.integration.helpers import (
    assert_invalid_token,
    assert_no_credentials_challenge,
    assert_oauth_error,
    bearer,
    refresh,
    running,
)


async def revoke(harness: Harness, token: str, **extra: str) -> int:
    response = await harness.client.post("/auth/revoke", data={"token": token, **extra})
    assert response.status_code == 200, response.text
    return response.status_code


async def me_status(harness: Harness, access_token: str) -> int:
    return (await harness.client.get("/auth/me", headers=bearer(access_token))).status_code


# ------------------------------------------------------------------------------- revoke


async def test_revoking_a_refresh_token_kills_its_family(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    response = await harness.client.post("/auth/revoke", data={"token": tokens["refresh_token"]})

    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["cache-control"]
    assert_oauth_error(await refresh(harness, tokens["refresh_token"]), "invalid_grant")
    me = await harness.client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert_invalid_token(me)


async def test_revoking_a_rotated_refresh_token_kills_its_descendants(harness: Harness) -> None:
    await harness.create_user("alice")
    first = await harness.login("alice")
    second = (await refresh(harness, first["refresh_token"])).json()

    await revoke(harness, second["refresh_token"])

    assert_invalid_token(
        await harness.client.get("/auth/me", headers=bearer(second["access_token"]))
    )
    assert_oauth_error(await refresh(harness, second["refresh_token"]), "invalid_grant")


async def test_revoking_an_access_token_refuses_it(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")
    other_login = await harness.login("alice")
    assert await me_status(harness, tokens["access_token"]) == 200

    await revoke(harness, tokens["access_token"])

    me = await harness.client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert_invalid_token(me)
    assert await me_status(harness, other_login["access_token"]) == 200


@pytest.mark.parametrize("hint", ["access_token", "refresh_token", "nonsense"])
async def test_a_wrong_token_type_hint_does_not_prevent_revocation(
    harness: Harness, hint: str
) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")
    other = await harness.login("alice")

    await revoke(harness, tokens["refresh_token"], token_type_hint=hint)
    await revoke(harness, other["access_token"], token_type_hint=hint)

    assert_oauth_error(await refresh(harness, tokens["refresh_token"]), "invalid_grant")
    assert_invalid_token(
        await harness.client.get("/auth/me", headers=bearer(other["access_token"]))
    )


@pytest.mark.parametrize(
    "token",
    ["unknown-token", "x" * 43, "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."],
)
async def test_revoking_an_unknown_token_answers_200(harness: Harness, token: str) -> None:
    response = await harness.client.post("/auth/revoke", data={"token": token})

    assert response.status_code == 200, response.text


async def test_revoking_a_dead_token_again_answers_200(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    for token in (tokens["refresh_token"], tokens["access_token"]):
        await revoke(harness, token)
        await revoke(harness, token)


@pytest.mark.parametrize("form", [{}, {"token": ""}, {"token_type_hint": "access_token"}])
async def test_revoke_without_a_token_is_invalid_request(
    harness: Harness, form: dict[str, str]
) -> None:
    response = await harness.client.post("/auth/revoke", data=form)

    assert_oauth_error(response, "invalid_request")


async def test_revoke_refuses_the_token_in_the_query_string(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    response = await harness.client.post(
        "/auth/revoke", params={"token": tokens["refresh_token"]}, data={"token": "x"}
    )

    assert_oauth_error(response, "invalid_request")


async def test_revoke_needs_no_client_authentication(harness: Harness) -> None:
    """Public clients: no Authorization header at all, and an empty Basic one, both work."""
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    response = await harness.client.post(
        "/auth/revoke",
        data={"token": tokens["refresh_token"], "client_id": "swagger-ui"},
        headers={"Authorization": "Basic Og=="},
    )

    assert response.status_code == 200, response.text
    assert_oauth_error(await refresh(harness, tokens["refresh_token"]), "invalid_grant")


# ------------------------------------------------------------------------------- logout


async def test_logout_kills_the_access_token_and_its_refresh_family(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice")

    response = await harness.client.post("/auth/logout", headers=bearer(tokens["access_token"]))

    assert response.status_code == 204, response.text
    assert response.content == b""
    me = await harness.client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert_invalid_token(me)
    assert_oauth_error(await refresh(harness, tokens["refresh_token"]), "invalid_grant")


async def test_logout_after_refresh_kills_the_whole_family(harness: Harness) -> None:
    await harness.create_user("alice")
    first = await harness.login("alice")
    second = (await refresh(harness, first["refresh_token"])).json()

    response = await harness.client.post("/auth/logout", headers=bearer(second["access_token"]))

    assert response.status_code == 204
    assert_oauth_error(await refresh(harness, second["refresh_token"]), "invalid_grant")
    assert_invalid_token(
        await harness.client.get("/auth/me", headers=bearer(second["access_token"]))
    )


async def test_logout_leaves_other_logins_alone(harness: Harness) -> None:
    await harness.create_user("alice")
    await harness.create_user("bob")
    tokens = await harness.login("alice")
    other_device = await harness.login("alice")
    bob = await harness.login("bob")

    await harness.client.post("/auth/logout", headers=bearer(tokens["access_token"]))

    assert await me_status(harness, other_device["access_token"]) == 200
    assert await me_status(harness, bob["access_token"]) == 200
    assert (await refresh(harness, other_device["refresh_token"])).status_code == 200


async def test_logout_without_credentials_is_401(harness: Harness) -> None:
    response = await harness.client.post("/auth/logout")

    assert response.status_code == 401
    assert_no_credentials_challenge(response)
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_logout_with_a_bad_token_is_401_invalid_token(harness: Harness) -> None:
    response = await harness.client.post("/auth/logout", headers=bearer("not.a.token"))

    assert_invalid_token(response)


# ------------------------------------------------------------------------------ restart


async def test_revocations_survive_a_restart(settings: BastionSettings) -> None:
    async with running(settings) as first_run:
        await first_run.create_user("alice")
        revoked_access = await first_run.login("alice")
        logged_out = await first_run.login("alice")
        kept = await first_run.login("alice")
        await revoke(first_run, revoked_access["access_token"])
        response = await first_run.client.post(
            "/auth/logout", headers=bearer(logged_out["access_token"])
        )
        assert response.status_code == 204

    async with running(settings) as second_run:
        assert_invalid_token(
            await second_run.client.get("/auth/me", headers=bearer(revoked_access["access_token"]))
        )
        assert_invalid_token(
            await second_run.client.get("/auth/me", headers=bearer(logged_out["access_token"]))
        )
        assert_oauth_error(await refresh(second_run, logged_out["refresh_token"]), "invalid_grant")
        # A token nobody revoked still works: the refusals are revocations, not a new key.
        assert await me_status(second_run, kept["access_token"]) == 200
        login = await second_run.client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "alice", "password": STRONG_PASSWORD},
        )
        assert login.status_code == 200
