"""``/items``, the owned resource (SPEC §3, §4.5)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Harness
from tests.integration.helpers import (
    RFC3339_UTC,
    assert_no_credentials_challenge,
    assert_problem,
    bearer,
    error_fields,
)

ITEM_FIELDS = {"id", "name", "description", "created_at", "updated_at"}


def parse_time(value: str) -> datetime:
    assert re.fullmatch(RFC3339_UTC, value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def create_item(
    harness: Harness, headers: dict[str, str], name: str = "thing", **fields: Any
) -> dict[str, Any]:
    response = await harness.client.post("/items", json={"name": name, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# ----------------------------------------------------------------------------- create


async def test_create_answers_201_with_the_item(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    before = datetime.now(UTC) - timedelta(seconds=2)

    response = await harness.client.post(
        "/items", json={"name": "notebook", "description": "A5, dotted"}, headers=headers
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == ITEM_FIELDS
    assert isinstance(body["id"], int)
    assert body["name"] == "notebook"
    assert body["description"] == "A5, dotted"
    created, updated = parse_time(body["created_at"]), parse_time(body["updated_at"])
    assert before <= created <= datetime.now(UTC) + timedelta(seconds=2)
    assert updated >= created


async def test_description_is_optional(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")

    body = await create_item(harness, headers, "bare")

    assert body["description"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 201},
        {"name": "ok", "description": "d" * 10_001},
        {},
        {"description": "no name"},
        {"name": 42},
        {"name": None},
    ],
    ids=["empty-name", "long-name", "long-description", "empty", "no-name", "int", "null"],
)
async def test_invalid_fields_are_422(harness: Harness, body: dict[str, Any]) -> None:
    headers = await harness.user_with_token("alice")

    response = await harness.client.post("/items", json=body, headers=headers)

    problem = assert_problem(response, 422)
    assert error_fields(problem)
    for error in problem["errors"]:
        assert set(error) == {"loc", "msg", "type"}
    listing = (await harness.client.get("/items", headers=headers)).json()
    assert listing["total"] == 0


async def test_a_long_value_is_never_echoed_in_a_422(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    secretish = "s3cr3t-" + "q" * 200

    response = await harness.client.post("/items", json={"name": secretish}, headers=headers)

    body = assert_problem(response, 422)
    assert "name" in error_fields(body)
    assert secretish not in response.text


async def test_the_boundaries_are_accepted(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")

    body = await create_item(harness, headers, "n" * 200, description="d" * 10_000)

    assert body["name"] == "n" * 200
    assert body["description"] == "d" * 10_000
    assert (await create_item(harness, headers, "x"))["name"] == "x"


@pytest.mark.parametrize("extra", [{"owner_id": 2}, {"id": 99}, {"created_at": "2020-01-01"}])
async def test_unknown_fields_are_422(harness: Harness, extra: dict[str, Any]) -> None:
    headers = await harness.user_with_token("alice")

    response = await harness.client.post("/items", json={"name": "x", **extra}, headers=headers)

    assert_problem(response, 422)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_that_is_not_json_is_415(harness: Harness, content_type: str) -> None:
    headers = await harness.user_with_token("alice")

    response = await harness.client.post(
        "/items", content='{"name": "x"}', headers={**headers, "Content-Type": content_type}
    )

    assert_problem(response, 415)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/x+json"]
)
async def test_json_content_types_with_parameters_are_accepted(
    harness: Harness, content_type: str
) -> None:
    headers = await harness.user_with_token("alice")

    response = await harness.client.post(
        "/items", content=b'{"name": "x"}', headers={**headers, "Content-Type": content_type}
    )

    assert response.status_code == 201, response.text


async def test_items_need_credentials(harness: Harness) -> None:
    for method, path in (("GET", "/items"), ("POST", "/items"), ("GET", "/items/1")):
        response = await harness.client.request(method, path, json={"name": "x"})
        assert_problem(response, 401)
        assert_no_credentials_challenge(response)


# ------------------------------------------------------------------------------- list


async def test_list_pages_through_the_callers_items(harness: Harness) -> None:
    alice = await harness.user_with_token("alice")
    bob = await harness.user_with_token("bob")
    created = [await create_item(harness, alice, f"item {n}") for n in range(5)]
    await create_item(harness, bob, "not alice's")

    default = (await harness.client.get("/items", headers=alice)).json()
    assert set(default) == {"items", "limit", "offset", "total"}
    assert default["total"] == 5
    assert default["offset"] == 0
    assert [i["id"] for i in default["items"]] == [c["id"] for c in created]
    assert default["items"][0] == created[0]

    seen: list[int] = []
    for offset in (0, 2, 4):
        response = await harness.client.get(
            "/items", params={"limit": 2, "offset": offset}, headers=alice
        )
        assert response.status_code == 200
        page = response.json()
        assert page["limit"] == 2
        assert page["offset"] == offset
        assert page["total"] == 5
        seen.extend(item["id"] for item in page["items"])
    assert seen == [c["id"] for c in created]

    beyond = (await harness.client.get("/items", params={"offset": 10}, headers=alice)).json()
    assert beyond["items"] == []
    assert beyond["total"] == 5


async def test_list_of_a_user_without_items_is_empty(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")

    response = await harness.client.get("/items", headers=headers)

    assert response.status_code == 200
    assert response.json()["items"] == []
    assert response.json()["total"] == 0


@pytest.mark.parametrize(
    "params",
    [{"limit": 101}, {"limit": 0}, {"limit": -1}, {"offset": -1}, {"limit": "ten"}],
    ids=["limit-101", "limit-0", "limit-negative", "offset-negative", "limit-text"],
)
async def test_bad_paging_is_422(harness: Harness, params: dict[str, Any]) -> None:
    headers = await harness.user_with_token("alice")

    response = await harness.client.get("/items", params=params, headers=headers)

    body = assert_problem(response, 422)
    assert set(error_fields(body)) & {"limit", "offset"}


async def test_limit_100_is_accepted(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")

    response = await harness.client.get("/items", params={"limit": 100}, headers=headers)

    assert response.status_code == 200
    assert response.json()["limit"] == 100


# ------------------------------------------------------------------ get, patch, delete


async def test_get_patch_delete_own_item(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    item = await create_item(harness, headers, "draft", description="first")

    got = await harness.client.get(f"/items/{item['id']}", headers=headers)
    assert got.status_code == 200
    assert got.json() == item

    patched = await harness.client.patch(
        f"/items/{item['id']}", json={"name": "final"}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert set(body) == ITEM_FIELDS
    assert body["id"] == item["id"]
    assert body["name"] == "final"
    assert body["description"] == "first"
    assert body["created_at"] == item["created_at"]
    assert parse_time(body["updated_at"]) >= parse_time(item["updated_at"])
    assert (await harness.client.get(f"/items/{item['id']}", headers=headers)).json() == body

    cleared = await harness.client.patch(
        f"/items/{item['id']}", json={"description": None}, headers=headers
    )
    assert cleared.status_code == 200
    assert cleared.json()["description"] is None
    assert cleared.json()["name"] == "final"

    deleted = await harness.client.delete(f"/items/{item['id']}", headers=headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await harness.client.get(f"/items/{item['id']}", headers=headers), 404)
    assert_problem(await harness.client.delete(f"/items/{item['id']}", headers=headers), 404)


@pytest.mark.parametrize(
    "body",
    [{"name": ""}, {"name": "x" * 201}, {"description": "d" * 10_001}, {"owner_id": 2}],
    ids=["empty-name", "long-name", "long-description", "owner-id"],
)
async def test_patch_validates_like_create(harness: Harness, body: dict[str, Any]) -> None:
    headers = await harness.user_with_token("alice")
    item = await create_item(harness, headers, "keep")

    response = await harness.client.patch(f"/items/{item['id']}", json=body, headers=headers)

    assert_problem(response, 422)
    assert (await harness.client.get(f"/items/{item['id']}", headers=headers)).json() == item


@pytest.mark.parametrize("item_id", [999_999, 0, -1, 2**31, 2**63])
async def test_an_unknown_item_is_404(harness: Harness, item_id: int) -> None:
    headers = await harness.user_with_token("alice")

    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
        response = await harness.client.request(
            method, f"/items/{item_id}", headers=headers, **kwargs
        )
        assert_problem(response, 404)


async def test_another_users_item_is_indistinguishable_from_a_missing_one(
    harness: Harness,
) -> None:
    alice = await harness.user_with_token("alice")
    bob = await harness.user_with_token("bob")
    item = await create_item(harness, alice, "private")
    missing_id = item["id"] + 1000

    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"name": "mine"}} if method == "PATCH" else {}
        other = await harness.client.request(method, f"/items/{item['id']}", headers=bob, **kwargs)
        missing = await harness.client.request(
            method, f"/items/{missing_id}", headers=bob, **kwargs
        )
        assert_problem(other, 404)
        assert other.json() == missing.json()
        assert "private" not in other.text

    listing = (await harness.client.get("/items", headers=bob)).json()
    assert listing["total"] == 0
    untouched = await harness.client.get(f"/items/{item['id']}", headers=alice)
    assert untouched.json() == item


# ----------------------------------------------------------------------------- scopes


async def test_a_read_only_token_cannot_write(harness: Harness) -> None:
    await harness.create_user("alice")
    writer = bearer((await harness.login("alice"))["access_token"])
    item = await create_item(harness, writer, "existing")
    reader = bearer((await harness.login("alice", scope="items:read"))["access_token"])

    assert (await harness.client.get("/items", headers=reader)).status_code == 200
    assert (await harness.client.get(f"/items/{item['id']}", headers=reader)).status_code == 200
    for method, path in (
        ("POST", "/items"),
        ("PATCH", f"/items/{item['id']}"),
        ("DELETE", f"/items/{item['id']}"),
    ):
        response = await harness.client.request(method, path, json={"name": "x"}, headers=reader)
        assert_problem(response, 403)
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="bastion"')
        assert 'error="insufficient_scope"' in challenge
        assert 'scope="items:write"' in challenge
    assert (await harness.client.get(f"/items/{item['id']}", headers=writer)).json() == item


async def test_a_write_only_token_cannot_read(harness: Harness) -> None:
    await harness.create_user("alice")
    writer = bearer((await harness.login("alice", scope="items:write"))["access_token"])

    assert (await harness.client.post("/items", json={"name": "x"}, headers=writer)).is_success
    response = await harness.client.get("/items", headers=writer)

    assert_problem(response, 403)
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert 'scope="items:read"' in response.headers["www-authenticate"]


async def test_a_token_without_item_scopes_cannot_use_items(harness: Harness) -> None:
    await harness.create_user("alice")
    keys_only = bearer((await harness.login("alice", scope="keys:manage"))["access_token"])

    assert_problem(await harness.client.get("/items", headers=keys_only), 403)
    assert_problem(await harness.client.post("/items", json={"name": "x"}, headers=keys_only), 403)
    # Authenticated, so routes that need no scope still answer.
    secure = await harness.client.get("/secure-data", headers=keys_only)
    assert secure.status_code == 200
