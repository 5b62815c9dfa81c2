"""``POST /auth/register`` under attack (SPEC §3, §4.2, §5): a refused sign-up never echoes the
password, weak passwords are refused naming the ``password`` field, and look-alike names cannot
create a second account next to an existing one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Harness
from tests.security.helpers import assert_problem

REGISTER = "/auth/register"
SECRET_PASSWORD = "Unique-Secret-Marker-f00d-4711"


def error_fields(body: dict[str, Any]) -> list[Any]:
    errors = body.get("errors")
    assert isinstance(errors, list), body
    assert errors, body
    return [error["loc"][-1] for error in errors]


def assert_not_echoed(text: str, password: str) -> None:
    assert password not in text
    assert password.lower() not in text.lower()


@pytest.mark.parametrize(
    "password",
    [
        "password1234",
        "PASSWORD1234",
        "qwertyuiop123",
        "123456789012",
        "short",
        "",
        "x" * 257,
        "my-alice-password-is-long",
    ],
    ids=["common", "common-upper", "keyboard", "digits", "short", "empty", "too-long", "name"],
)
async def test_weak_password_is_422_naming_the_password_field_without_echo(
    harness: Harness, password: str
) -> None:
    response = await harness.client.post(REGISTER, json={"username": "alice", "password": password})
    body = assert_problem(response, 422)
    assert "password" in error_fields(body)
    if password:
        assert_not_echoed(response.text, password)


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "ab", "password": SECRET_PASSWORD},
        {"username": "a\x00lice", "password": SECRET_PASSWORD},
        {"username": " alice ", "password": SECRET_PASSWORD},
        {"username": "x" * 300, "password": SECRET_PASSWORD},
        {"username": ["alice"], "password": SECRET_PASSWORD},
        {"username": "alice", "password": SECRET_PASSWORD, "password_confirm": SECRET_PASSWORD},
        {"username": "alice", "password": [SECRET_PASSWORD]},
        {"username": "alice", "password": {"value": SECRET_PASSWORD}},
        {"username": "alice", "password": SECRET_PASSWORD * 200},
        {"password": SECRET_PASSWORD},
        {"username": SECRET_PASSWORD + "\x00", "password": SECRET_PASSWORD},
    ],
    ids=[
        "short-name",
        "control-char",
        "spaces",
        "long-name",
        "name-list",
        "extra-field",
        "password-list",
        "password-object",
        "password-huge",
        "no-name",
        "name-contains-password",
    ],
)
async def test_any_422_on_register_never_echoes_the_password(
    harness: Harness, payload: dict[str, Any]
) -> None:
    response = await harness.client.post(REGISTER, json=payload)
    assert_problem(response, 422)
    assert_not_echoed(response.text, SECRET_PASSWORD)


async def test_truncated_json_with_a_password_is_422_without_echo(harness: Harness) -> None:
    content = ('{"username": "alice", "password": "' + SECRET_PASSWORD).encode()
    response = await harness.client.post(
        REGISTER, content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    assert_problem(response, response.status_code)
    assert_not_echoed(response.text, SECRET_PASSWORD)


async def test_password_sent_as_a_form_is_415_without_echo(harness: Harness) -> None:
    response = await harness.client.post(
        REGISTER, data={"username": "alice", "password": SECRET_PASSWORD}
    )
    assert_problem(response, 415)
    assert_not_echoed(response.text, SECRET_PASSWORD)


@pytest.mark.parametrize(
    "spoof",
    ["ALICE", "Alice", "\uff21\uff4c\uff49\uff43\uff45", "aLiCe"],
    ids=["upper", "title", "fullwidth", "mixed"],
)
async def test_look_alike_of_an_existing_name_cannot_register(harness: Harness, spoof: str) -> None:
    first = await harness.client.post(
        REGISTER, json={"username": "alice", "password": SECRET_PASSWORD}
    )
    assert first.status_code == 201, first.text
    second = await harness.client.post(
        REGISTER, json={"username": spoof, "password": "another strong passphrase 42"}
    )
    assert_problem(second, 409)
    assert "another strong passphrase 42" not in second.text


async def test_successful_registration_does_not_return_the_password(harness: Harness) -> None:
    response = await harness.client.post(
        REGISTER, json={"username": "alice", "password": SECRET_PASSWORD}
    )
    assert response.status_code == 201
    assert set(response.json()) == {"id", "username"}
    assert_not_echoed(response.text, SECRET_PASSWORD)
