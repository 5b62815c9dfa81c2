"""Revocation and logout end credentials at once (SPEC §4.2, RFC 7009), and the revocation
endpoint cannot be used as an oracle: any token, known or not, gets the same 200."""

from __future__ import annotations

import httpx
import pytest

from bastion.core import Bastion
from bastion.server import create_app
from tests.conftest import Harness
from tests.security.conftest import Account, new_account
from tests.security.helpers import (
    assert_invalid_token,
    assert_missing_credentials,
    assert_no_store,
    assert_oauth_error,
    bearer,
    forge_hs256,
    valid_claims,
)

REVOKE = "/auth/revoke"


async def revoke(harness: Harness, token: str, **extra: str) -> httpx.Response:
    return await harness.client.post(REVOKE, data={"token": token, **extra})


async def secure_data(harness: Harness, access_token: str) -> httpx.Response:
    return await harness.client.get("/secure-data", headers=bearer(access_token))


async def refresh(harness: Harness, refresh_token: str) -> httpx.Response:
    return await harness.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token", "bogus_hint"])
async def test_revoked_access_token_gets_401_invalid_token(
    harness: Harness, alice: Account, hint: str | None
) -> None:
    """The hint is only a hint (RFC 7009 §2.1): a wrong one must not save the token."""
    extra = {"token_type_hint": hint} if hint else {}
    response = await revoke(harness, alice.access_token, **extra)
    assert response.status_code == 200
    assert_no_store(response)
    assert_invalid_token(await secure_data(harness, alice.access_token), alice.access_token)


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"])
async def test_revoked_refresh_token_kills_its_family(
    harness: Harness, alice: Account, hint: str | None
) -> None:
    extra = {"token_type_hint": hint} if hint else {}
    assert (await revoke(harness, alice.refresh_token, **extra)).status_code == 200
    assert_oauth_error(await refresh(harness, alice.refresh_token), "invalid_grant")
    assert_invalid_token(await secure_data(harness, alice.access_token), alice.access_token)


async def test_revoking_one_token_leaves_other_logins_alive(
    harness: Harness, alice: Account
) -> None:
    other = await harness.login("alice")
    assert (await revoke(harness, alice.refresh_token)).status_code == 200
    assert (await secure_data(harness, other["access_token"])).status_code == 200
    assert (await refresh(harness, other["refresh_token"])).status_code == 200


async def test_logout_kills_the_access_token_and_its_refresh_family(
    harness: Harness, alice: Account
) -> None:
    response = await harness.client.post("/auth/logout", headers=alice.headers)
    assert response.status_code == 204
    assert_invalid_token(await secure_data(harness, alice.access_token), alice.access_token)
    assert_oauth_error(await refresh(harness, alice.refresh_token), "invalid_grant")


async def test_logout_kills_access_tokens_rotated_in_the_same_family(
    harness: Harness, alice: Account
) -> None:
    rotated = (await refresh(harness, alice.refresh_token)).json()
    response = await harness.client.post("/auth/logout", headers=bearer(rotated["access_token"]))
    assert response.status_code == 204
    for token in (alice.access_token, rotated["access_token"]):
        assert_invalid_token(await secure_data(harness, token), token)
    assert_oauth_error(await refresh(harness, rotated["refresh_token"]), "invalid_grant")


async def test_logout_twice_gets_401_the_second_time(harness: Harness, alice: Account) -> None:
    assert (await harness.client.post("/auth/logout", headers=alice.headers)).status_code == 204
    again = await harness.client.post("/auth/logout", headers=alice.headers)
    assert_invalid_token(again, alice.access_token)


async def test_logout_without_credentials_is_401(harness: Harness) -> None:
    assert_missing_credentials(await harness.client.post("/auth/logout"))


async def test_one_users_logout_does_not_touch_another_user(
    harness: Harness, alice: Account
) -> None:
    mallory = await new_account(harness, "mallory")
    assert (await harness.client.post("/auth/logout", headers=alice.headers)).status_code == 204
    assert (await secure_data(harness, mallory.access_token)).status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "x" * 43,
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        "' OR 1=1 --",
        "\u00e9\u00e8\u00ea",
        "%00",
    ],
    ids=["word", "dotted", "refresh-shaped", "alg-none", "sql", "latin1", "pct-nul"],
)
async def test_revoking_garbage_or_unknown_tokens_answers_200(
    harness: Harness, alice: Account, token: str
) -> None:
    response = await revoke(harness, token)
    assert response.status_code == 200, response.text
    assert_no_store(response)
    assert (await secure_data(harness, alice.access_token)).status_code == 200


async def test_revoking_a_long_garbage_token_answers_200(harness: Harness, alice: Account) -> None:
    """RFC 7009 §2.2 / SPEC §4.2: 200 for any token; 400 only when ``token`` is missing."""
    response = await revoke(harness, "g" * 10_000)
    assert response.status_code == 200, response.text


async def test_revoking_a_forged_access_token_answers_200_and_harms_nobody(
    harness: Harness, alice: Account
) -> None:
    forged = forge_hs256(harness, valid_claims(harness, alice.id), secret="not-the-secret" * 4)
    assert (await revoke(harness, forged)).status_code == 200
    assert (await secure_data(harness, alice.access_token)).status_code == 200


async def test_revoking_an_already_dead_token_answers_200(harness: Harness, alice: Account) -> None:
    for token in (alice.refresh_token, alice.access_token):
        assert (await revoke(harness, token)).status_code == 200
        assert (await revoke(harness, token)).status_code == 200


async def test_known_and_unknown_tokens_get_identical_revocation_answers(
    harness: Harness, alice: Account
) -> None:
    known = await revoke(harness, alice.refresh_token)
    unknown = await revoke(harness, "x" * len(alice.refresh_token))
    assert known.status_code == unknown.status_code == 200
    assert known.content == unknown.content


@pytest.mark.parametrize(
    "data",
    [{}, {"token_type_hint": "access_token"}, {"tokens": "x"}],
    ids=["empty", "hint", "typo"],
)
async def test_revoke_without_a_token_is_invalid_request(
    harness: Harness, data: dict[str, str]
) -> None:
    response = await harness.client.post(
        REVOKE, data=data, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_oauth_error(response, "invalid_request")


async def test_revoke_with_the_token_in_the_query_string_is_invalid_request(
    harness: Harness, alice: Account
) -> None:
    response = await harness.client.post(
        REVOKE, params={"token": alice.refresh_token}, data={"token": "x"}
    )
    assert_oauth_error(response, "invalid_request")
    assert alice.refresh_token not in response.text


async def test_revoke_with_a_json_body_is_invalid_request(harness: Harness, alice: Account) -> None:
    response = await harness.client.post(REVOKE, json={"token": alice.refresh_token})
    assert_oauth_error(response, "invalid_request")
    assert (await refresh(harness, alice.refresh_token)).status_code == 200


async def test_revocations_survive_a_restart(harness: Harness, alice: Account) -> None:
    """The database is the record (SPEC §7): a new process reloads what was revoked."""
    bob = await new_account(harness, "bob")
    assert (await revoke(harness, alice.access_token)).status_code == 200
    assert (await harness.client.post("/auth/logout", headers=bob.headers)).status_code == 204
    restarted = Bastion(harness.bastion.settings)
    app = create_app(bastion=restarted)
    async with restarted.lifespan(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for token in (alice.access_token, bob.access_token):
                response = await client.get("/secure-data", headers=bearer(token))
                assert_invalid_token(response, token)
