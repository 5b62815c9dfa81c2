"""``POST /auth/token``, the password grant and the endpoint's error behaviour (SPEC §4.2)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import STRONG_PASSWORD, Harness
from tests.integration.conftest import StartApp
from tests.integration.helpers import (
    USER_SCOPES,
    assert_oauth_error,
    basic,
    bearer,
    claims_of,
    header_of,
    password_login,
    scope_set,
    set_user,
)

TOKEN_FIELDS = {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
ACCESS_CLAIMS = {"iss", "aud", "sub", "exp", "iat", "nbf", "jti", "scope", "sid"}


async def test_password_grant_answers_a_bearer_token_pair(harness: Harness) -> None:
    await harness.create_user("alice")

    response = await password_login(harness, "alice", STRONG_PASSWORD)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "no-store" in response.headers["cache-control"]
    body = response.json()
    assert set(body) == TOKEN_FIELDS
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert isinstance(body["access_token"], str)
    assert body["access_token"]
    assert isinstance(body["refresh_token"], str)
    assert body["refresh_token"]
    assert scope_set(body["scope"]) == USER_SCOPES
    assert body["refresh_token"] != body["access_token"]


async def test_access_token_is_an_rfc9068_jwt_with_every_claim(harness: Harness) -> None:
    user_id = await harness.create_user("alice")
    before = int(time.time())

    body = await harness.login("alice")

    header = header_of(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "HS256"
    assert isinstance(header["kid"], str)
    assert header["kid"]
    claims = claims_of(body["access_token"])
    assert set(claims) >= ACCESS_CLAIMS
    assert claims["iss"] == "bastion"
    assert claims["aud"] == "bastion"
    assert claims["sub"] == str(user_id)
    assert isinstance(claims["jti"], str)
    assert claims["jti"]
    assert isinstance(claims["sid"], str)
    assert claims["sid"]
    assert scope_set(claims["scope"]) == USER_SCOPES
    assert claims["exp"] - claims["iat"] == 900
    assert before - 1 <= claims["iat"] <= int(time.time()) + 1
    assert claims["nbf"] <= claims["iat"] + 1


async def test_each_login_gets_its_own_token_id_and_refresh_family(harness: Harness) -> None:
    await harness.create_user("alice")

    first = claims_of((await harness.login("alice"))["access_token"])
    second = claims_of((await harness.login("alice"))["access_token"])

    assert first["jti"] != second["jti"]
    assert first["sid"] != second["sid"]


async def test_the_access_token_authenticates(harness: Harness) -> None:
    await harness.create_user("alice")
    body = await harness.login("alice")

    response = await harness.client.get("/secure-data", headers=bearer(body["access_token"]))

    assert response.status_code == 200
    assert response.json() == {"data": "This is protected data", "user": "alice"}


@pytest.mark.parametrize(
    "requested", ["items:read", "items:read items:write", "keys:manage items:read"]
)
async def test_a_narrower_scope_grants_exactly_that(harness: Harness, requested: str) -> None:
    await harness.create_user("alice")

    body = await harness.login("alice", scope=requested)

    assert scope_set(body["scope"]) == scope_set(requested)
    assert scope_set(claims_of(body["access_token"])["scope"]) == scope_set(requested)
    me = await harness.client.get("/auth/me", headers=bearer(body["access_token"]))
    assert set(me.json()["scopes"]) == scope_set(requested)


@pytest.mark.parametrize("requested", ["admin", "items:read admin", "metrics:read", "no:such"])
async def test_a_scope_the_user_does_not_hold_is_invalid_scope(
    harness: Harness, requested: str
) -> None:
    await harness.create_user("alice")

    response = await password_login(harness, "alice", STRONG_PASSWORD, scope=requested)

    assert_oauth_error(response, "invalid_scope")


async def test_client_id_is_accepted_and_ignored(harness: Harness) -> None:
    await harness.create_user("alice")

    response = await password_login(harness, "alice", STRONG_PASSWORD, client_id="swagger-ui")

    assert response.status_code == 200, response.text
    assert scope_set(response.json()["scope"]) == USER_SCOPES


@pytest.mark.parametrize("client_credentials", [":", "client:"])
async def test_empty_http_basic_client_credentials_are_accepted_and_ignored(
    harness: Harness, client_credentials: str
) -> None:
    await harness.create_user("alice")

    response = await harness.client.post(
        "/auth/token",
        data={"grant_type": "password", "username": "alice", "password": STRONG_PASSWORD},
        headers=basic(client_credentials),
    )

    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert (await harness.client.get("/auth/me", headers=bearer(token))).status_code == 200


@pytest.mark.parametrize(
    "grant_type", ["client_credentials", "authorization_code", "implicit", "PASSWORD", "x"]
)
async def test_an_unsupported_grant_type_is_refused(harness: Harness, grant_type: str) -> None:
    await harness.create_user("alice")

    response = await harness.client.post(
        "/auth/token",
        data={"grant_type": grant_type, "username": "alice", "password": STRONG_PASSWORD},
    )

    assert_oauth_error(response, "unsupported_grant_type")


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"username": "alice", "password": STRONG_PASSWORD},
        {"grant_type": "password"},
        {"grant_type": "password", "username": "alice"},
        {"grant_type": "password", "password": STRONG_PASSWORD},
        {"grant_type": "refresh_token"},
        {"grant_type": "refresh_token", "refresh_token": ""},
    ],
    ids=[
        "empty",
        "no-grant-type",
        "password-no-credentials",
        "password-no-password",
        "password-no-username",
        "refresh-no-token",
        "refresh-empty-token",
    ],
)
async def test_missing_parameters_are_invalid_request(
    harness: Harness, form: dict[str, str]
) -> None:
    await harness.create_user("alice")

    response = await harness.client.post("/auth/token", data=form)

    assert_oauth_error(response, "invalid_request")


async def test_a_json_body_is_invalid_request(harness: Harness) -> None:
    await harness.create_user("alice")

    response = await harness.client.post(
        "/auth/token",
        json={"grant_type": "password", "username": "alice", "password": STRONG_PASSWORD},
    )

    assert_oauth_error(response, "invalid_request")


@pytest.mark.parametrize("param", ["password", "refresh_token", "client_secret"])
async def test_credentials_in_the_query_string_are_refused(harness: Harness, param: str) -> None:
    await harness.create_user("alice")

    response = await harness.client.post(
        "/auth/token",
        params={param: STRONG_PASSWORD},
        data={"grant_type": "password", "username": "alice", "password": STRONG_PASSWORD},
    )

    assert_oauth_error(response, "invalid_request")


async def test_wrong_password_and_unknown_user_give_the_same_answer(harness: Harness) -> None:
    await harness.create_user("alice")

    wrong_password = await password_login(harness, "alice", "not the right password")
    unknown_user = await password_login(harness, "mallory", "not the right password")

    assert_oauth_error(wrong_password, "invalid_grant")
    assert_oauth_error(unknown_user, "invalid_grant")
    assert wrong_password.json() == unknown_user.json()


async def test_a_disabled_user_with_the_right_password_gets_invalid_grant(
    harness: Harness,
) -> None:
    user_id = await harness.create_user("alice")
    await set_user(harness, user_id, disabled=True)

    response = await password_login(harness, "alice", STRONG_PASSWORD)

    body = assert_oauth_error(response, "invalid_grant")
    unknown = await password_login(harness, "mallory", STRONG_PASSWORD)
    assert body == unknown.json()


async def test_login_accepts_any_spelling_of_the_username(harness: Harness) -> None:
    await harness.create_user("alice")

    response = await password_login(harness, "ALICE", STRONG_PASSWORD)

    assert response.status_code == 200, response.text


async def test_lifetime_issuer_and_audience_follow_the_settings(start_app: StartApp) -> None:
    harness = await start_app(
        access_token_ttl=120, issuer="https://api.example.com", audience="example-api"
    )
    await harness.create_user("alice")

    body = await harness.login("alice")

    assert body["expires_in"] == 120
    claims = claims_of(body["access_token"])
    assert claims["exp"] - claims["iat"] == 120
    assert claims["iss"] == "https://api.example.com"
    assert claims["aud"] == "example-api"
    me = await harness.client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
