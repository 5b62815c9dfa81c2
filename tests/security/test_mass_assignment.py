"""Mass assignment (OWASP API3; SPEC §2.5 "unknown fields rejected", §4.5).

A client that adds ``owner_id`` or ``id`` (or any server-owned field) to a body gets 422 naming
the field, and nothing is created or changed.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Harness
from tests.security.conftest import Account
from tests.security.helpers import assert_problem

MARKER = "Injected-Value-Marker-31c7"
SERVER_OWNED = ["owner_id", "id", "created_at", "updated_at", "owner", "ownerId"]


def assert_rejects_field(response: Any, field: str) -> None:
    body = assert_problem(response, 422)
    errors = body.get("errors")
    assert isinstance(errors, list), body
    assert errors, body
    locations = [error["loc"] for error in errors]
    assert any(loc and loc[-1] == field for loc in locations), locations
    for error in errors:
        assert set(error) == {"loc", "msg", "type"}, error
    assert MARKER not in response.text, "the submitted value must not be echoed"


async def item_count(harness: Harness, who: Account) -> int:
    response = await harness.client.get("/items", headers=who.headers)
    assert response.status_code == 200
    total: int = response.json()["total"]
    return total


@pytest.mark.parametrize("field", SERVER_OWNED)
async def test_create_item_with_a_server_owned_field_is_422_and_creates_nothing(
    harness: Harness, alice: Account, mallory: Account, field: str
) -> None:
    value: Any = alice.id if field in ("owner_id", "id", "owner", "ownerId") else MARKER
    response = await harness.client.post(
        "/items", json={"name": MARKER, field: value}, headers=mallory.headers
    )
    assert_rejects_field(response, field)
    assert await item_count(harness, mallory) == 0
    assert await item_count(harness, alice) == 0


async def test_create_item_with_owner_id_as_a_string_marker_is_not_echoed(
    harness: Harness, mallory: Account
) -> None:
    response = await harness.client.post(
        "/items", json={"name": "x", "owner_id": MARKER}, headers=mallory.headers
    )
    assert_rejects_field(response, "owner_id")


@pytest.mark.parametrize("field", SERVER_OWNED)
async def test_update_item_with_a_server_owned_field_is_422_and_changes_nothing(
    harness: Harness, alice: Account, mallory: Account, field: str
) -> None:
    created = await harness.client.post("/items", json={"name": "mine"}, headers=mallory.headers)
    assert created.status_code == 201
    item = created.json()
    value: Any = alice.id if field in ("owner_id", "id", "owner", "ownerId") else MARKER
    response = await harness.client.patch(
        f"/items/{item['id']}", json={"name": "changed", field: value}, headers=mallory.headers
    )
    assert_rejects_field(response, field)
    after = await harness.client.get(f"/items/{item['id']}", headers=mallory.headers)
    assert after.json() == item, "a rejected PATCH must not apply its other fields either"
    assert await item_count(harness, alice) == 0


async def test_item_cannot_be_given_away_by_patching_owner_id(
    harness: Harness, alice: Account, mallory: Account
) -> None:
    created = await harness.client.post("/items", json={"name": "mine"}, headers=mallory.headers)
    item_id = created.json()["id"]
    await harness.client.patch(
        f"/items/{item_id}", json={"owner_id": alice.id}, headers=mallory.headers
    )
    assert (await harness.client.get(f"/items/{item_id}", headers=alice.headers)).status_code == 404
    assert (
        await harness.client.get(f"/items/{item_id}", headers=mallory.headers)
    ).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "__class__": "Item"},
        {"name": "x", "__proto__": {"owner_id": 1}},
        {"name": "x", "constructor": {"prototype": {"admin": True}}},
        {"name": "x", "NAME": "y"},
    ],
    ids=["__class__", "__proto__", "constructor", "case-variant"],
)
async def test_create_item_with_any_unknown_field_is_422(
    harness: Harness, mallory: Account, body: dict[str, Any]
) -> None:
    response = await harness.client.post("/items", json=body, headers=mallory.headers)
    extra = next(k for k in body if k != "name")
    assert_rejects_field(response, extra)
    assert await item_count(harness, mallory) == 0


@pytest.mark.parametrize("field", ["roles", "is_admin", "admin", "disabled", "id", "scopes"])
async def test_register_with_a_privilege_field_is_422_and_creates_no_user(
    harness: Harness, field: str
) -> None:
    value: Any = ["admin"] if field in ("roles", "scopes") else True
    response = await harness.client.post(
        "/auth/register",
        json={"username": "eve-the-admin", "password": "an unguessable passphrase 7", field: value},
    )
    assert_rejects_field(response, field)
    login = await harness.client.post(
        "/auth/token",
        data={
            "grant_type": "password",
            "username": "eve-the-admin",
            "password": "an unguessable passphrase 7",
        },
    )
    assert login.status_code == 400, "no account may have been created"
