"""``POST /auth/register`` (SPEC §4.2, §5)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import STRONG_PASSWORD, Harness
from tests.integration.conftest import StartApp
from tests.integration.helpers import assert_problem, bearer, error_fields, password_login


async def register(
    harness: Harness, username: str, password: str = STRONG_PASSWORD
) -> httpx.Response:
    return await harness.client.post(
        "/auth/register", json={"username": username, "password": password}
    )


async def test_register_creates_a_user_who_can_log_in(harness: Harness) -> None:
    response = await register(harness, "alice")

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "username"}
    assert isinstance(body["id"], int)
    assert body["username"] == "alice"
    assert STRONG_PASSWORD not in response.text
    login = await password_login(harness, "alice", STRONG_PASSWORD)
    assert login.status_code == 200
    me = await harness.client.get("/auth/me", headers=bearer(login.json()["access_token"]))
    assert me.json()["id"] == body["id"]
    assert me.json()["roles"] == ["user"]


@pytest.mark.parametrize(("given", "stored"), [("ALICE", "alice"), ("Ａlice", "alice")])
async def test_the_username_is_normalised(harness: Harness, given: str, stored: str) -> None:
    response = await register(harness, given)

    assert response.status_code == 201, response.text
    assert response.json()["username"] == stored
    assert (await password_login(harness, stored, STRONG_PASSWORD)).status_code == 200


@pytest.mark.parametrize("second", ["alice", "Alice", "ALICE", "Ａlice"])
async def test_a_taken_name_is_409_whatever_its_spelling(harness: Harness, second: str) -> None:
    assert (await register(harness, "alice")).status_code == 201

    response = await register(harness, second, "another long passphrase here")

    assert_problem(response, 409)
    # The first account keeps its password.
    assert (await password_login(harness, "alice", STRONG_PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 65, "bad\x00name", "bad\nname", "bad\x7fname", "x\x1b[0m"],
    ids=["too-short", "too-long", "nul", "newline", "del", "escape"],
)
async def test_a_bad_name_is_422_naming_username(harness: Harness, name: str) -> None:
    response = await register(harness, name)

    body = assert_problem(response, 422)
    assert "username" in error_fields(body)
    assert STRONG_PASSWORD not in response.text


@pytest.mark.parametrize(
    "password",
    ["short", "password1234", "my-name-is-alice", "x" * 257],
    ids=["too-short", "common", "contains-username", "too-long"],
)
async def test_a_weak_password_is_422_naming_password_without_echoing_it(
    harness: Harness, password: str
) -> None:
    response = await register(harness, "alice", password)

    body = assert_problem(response, 422)
    assert "password" in error_fields(body)
    assert password not in response.text
    assert (await password_login(harness, "alice", password)).status_code == 400


@pytest.mark.parametrize(
    "extra", [{"roles": ["admin"]}, {"id": 1}, {"disabled": False}, {"is_admin": True}]
)
async def test_unknown_fields_are_refused(harness: Harness, extra: dict[str, object]) -> None:
    response = await harness.client.post(
        "/auth/register", json={"username": "alice", "password": STRONG_PASSWORD, **extra}
    )

    assert_problem(response, 422)
    assert (await password_login(harness, "alice", STRONG_PASSWORD)).status_code == 400


async def test_sign_up_closed_is_403(start_app: StartApp) -> None:
    closed = await start_app(signup=False)

    response = await register(closed, "alice")

    assert_problem(response, 403)
    assert (await password_login(closed, "alice", STRONG_PASSWORD)).status_code == 400


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (f"username=alice&password={STRONG_PASSWORD}", "application/x-www-form-urlencoded"),
        (f'{{"username": "alice", "password": "{STRONG_PASSWORD}"}}', "text/plain"),
    ],
)
async def test_a_body_that_is_not_json_is_415(
    harness: Harness, content: str, content_type: str
) -> None:
    response = await harness.client.post(
        "/auth/register", content=content, headers={"Content-Type": content_type}
    )

    assert_problem(response, 415)
    assert (await password_login(harness, "alice", STRONG_PASSWORD)).status_code == 400
