"""``/auth/keys`` and authentication by API key, as a client sees them (SPEC §4.4, §3, §4.7)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, update

from bastion.api.dependencies import require as require_dependency
from bastion.api_keys import new_api_key
from bastion.core import Bastion
from bastion.principal import Principal
from bastion.storage.models import ApiKey
from tests.conftest import STRONG_PASSWORD, Harness, make_settings
from tests.integration.conftest import StartApp
from tests.integration.helpers import (
    PROBLEM_JSON,
    RFC3339_UTC,
    USER_SCOPES,
    assert_problem,
    bearer,
    error_fields,
    set_user,
)

ISSUED_FIELDS = {"id", "name", "key", "prefix", "scopes", "created_at", "expires_at"}
LISTED_FIELDS = {
    "id",
    "name",
    "prefix",
    "scopes",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
}
KEY_CHALLENGE = 'ApiKey realm="bastion"'


def api_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def when(value: str) -> datetime:
    assert re.fullmatch(RFC3339_UTC, value), value
    return datetime.fromisoformat(value)


def secret_of(issued: dict[str, Any]) -> str:
    """The part of the key after ``bst_<id>_``: what must never be shown again."""
    key: str = issued["key"]
    assert key.startswith(issued["prefix"] + "_")
    return key[len(issued["prefix"]) + 1 :]


async def create_key(
    h: Harness, headers: dict[str, str], name: str = "ci", **fields: Any
) -> dict[str, Any]:
    response = await h.client.post("/auth/keys", json={"name": name, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def list_keys(h: Harness, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await h.client.get("/auth/keys", headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def assert_key_refused(response: httpx.Response) -> dict[str, Any]:
    body = assert_problem(response, 401)
    assert KEY_CHALLENGE in response.headers["www-authenticate"]
    return body


@contextmanager
def key_reads(h: Harness) -> Iterator[list[str]]:
    """SELECTs on ``api_keys`` run inside the block (any worker's cache miss is one)."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        text = " ".join(statement.split()).upper()
        if text.startswith("SELECT") and "API_KEYS" in text:
            seen.append(text)

    engine = h.bastion.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


# ------------------------------------------------------------------------------ create


async def test_creating_a_key_answers_201_with_exactly_the_issued_fields(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    response = await harness.client.post("/auth/keys", json={"name": "ci"}, headers=headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == ISSUED_FIELDS
    assert body["name"] == "ci"
    assert body["key"].startswith("bst_")
    assert body["prefix"].startswith("bst_")
    assert body["key"].startswith(body["prefix"])
    assert body["id"] in body["prefix"]
    assert secret_of(body) not in body["prefix"]
    when(body["created_at"])
    when(body["expires_at"])
    assert "no-store" in response.headers["cache-control"]


async def test_scopes_default_to_those_of_the_creating_credential(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    assert set((await create_key(harness, headers))["scopes"]) == USER_SCOPES

    narrow = await harness.login("alice", scope="items:read keys:manage")
    issued = await create_key(harness, bearer(narrow["access_token"]))
    assert set(issued["scopes"]) == {"items:read", "keys:manage"}


async def test_a_key_may_narrow_the_scopes(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers, scopes=["items:read"])
    assert issued["scopes"] == ["items:read"]
    (listed,) = await list_keys(harness, headers)
    assert listed["scopes"] == ["items:read"]


@pytest.mark.parametrize(
    "scopes",
    [["admin"], ["items:read", "metrics:read"], ["no-such:scope"]],
    ids=["admin", "one-extra", "unknown"],
)
async def test_a_wider_scope_request_is_403(harness: Harness, scopes: list[str]) -> None:
    headers = await harness.user_with_token("alice")
    response = await harness.client.post(
        "/auth/keys", json={"name": "ci", "scopes": scopes}, headers=headers
    )
    assert_problem(response, 403)
    assert "bst_" not in response.text
    assert await list_keys(harness, headers) == []


async def test_a_narrowed_token_cannot_create_a_wider_key(harness: Harness) -> None:
    await harness.create_user("alice")
    narrow = await harness.login("alice", scope="keys:manage items:read")
    response = await harness.client.post(
        "/auth/keys",
        json={"name": "ci", "scopes": ["items:write"]},
        headers=bearer(narrow["access_token"]),
    )
    assert_problem(response, 403)


async def test_creating_keys_needs_the_keys_manage_scope(harness: Harness) -> None:
    await harness.create_user("alice")
    tokens = await harness.login("alice", scope="items:read")
    response = await harness.client.post(
        "/auth/keys", json={"name": "ci"}, headers=bearer(tokens["access_token"])
    )
    assert_problem(response, 403)
    anonymous = await harness.client.post("/auth/keys", json={"name": "ci"})
    assert_problem(anonymous, 401)


async def test_expiry_defaults_to_the_maximum_of_90_days(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)
    assert when(issued["expires_at"]) - when(issued["created_at"]) == timedelta(days=90)
    shorter = await create_key(harness, headers, expires_in_days=7)
    assert when(shorter["expires_at"]) - when(shorter["created_at"]) == timedelta(days=7)
    exact = await create_key(harness, headers, expires_in_days=90)
    assert when(exact["expires_at"]) - when(exact["created_at"]) == timedelta(days=90)


@pytest.mark.parametrize("days", [91, 365, 10**9])
async def test_an_expiry_beyond_the_maximum_is_422_naming_expires_in_days(
    harness: Harness, days: int
) -> None:
    headers = await harness.user_with_token("alice")
    response = await harness.client.post(
        "/auth/keys", json={"name": "ci", "expires_in_days": days}, headers=headers
    )
    body = assert_problem(response, 422)
    assert "expires_in_days" in error_fields(body)
    assert await list_keys(harness, headers) == []


@pytest.mark.parametrize("days", [0, -1, "soon", 1.5])
async def test_a_nonsense_expiry_is_422(harness: Harness, days: object) -> None:
    headers = await harness.user_with_token("alice")
    response = await harness.client.post(
        "/auth/keys", json={"name": "ci", "expires_in_days": days}, headers=headers
    )
    body = assert_problem(response, 422)
    assert "expires_in_days" in error_fields(body)


async def test_the_maximum_follows_the_setting(start_app: StartApp) -> None:
    h = await start_app(api_key_max_days=7)
    headers = await h.user_with_token("alice")
    issued = await create_key(h, headers)
    assert when(issued["expires_at"]) - when(issued["created_at"]) == timedelta(days=7)
    too_long = await h.client.post(
        "/auth/keys", json={"name": "ci", "expires_in_days": 8}, headers=headers
    )
    assert "expires_in_days" in error_fields(assert_problem(too_long, 422))


@pytest.mark.parametrize(
    "extra",
    [{"owner_id": 2}, {"id": "abc"}, {"key": "bst_x"}, {"user_id": 1}, {"revoked_at": None}],
    ids=["owner_id", "id", "key", "user_id", "revoked_at"],
)
async def test_unknown_fields_are_422(harness: Harness, extra: dict[str, Any]) -> None:
    headers = await harness.user_with_token("alice")
    response = await harness.client.post(
        "/auth/keys", json={"name": "ci", **extra}, headers=headers
    )
    body = assert_problem(response, 422)
    assert next(iter(extra)) in error_fields(body)
    assert await list_keys(harness, headers) == []


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "x" * 101}, {"name": 5}, {"name": "ci", "scopes": "items:read"}],
    ids=["no-name", "empty-name", "long-name", "number", "scopes-string"],
)
async def test_bad_bodies_are_422(harness: Harness, body: dict[str, Any]) -> None:
    headers = await harness.user_with_token("alice")
    response = await harness.client.post("/auth/keys", json=body, headers=headers)
    assert_problem(response, 422)


async def test_a_non_json_body_is_415(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    response = await harness.client.post("/auth/keys", data={"name": "ci"}, headers=headers)
    assert_problem(response, 415)


# -------------------------------------------------------------------------------- list


async def test_the_list_shows_the_callers_keys_without_any_secret(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    first = await create_key(harness, headers, name="first")
    second = await create_key(harness, headers, name="second", scopes=["items:read"])

    response = await harness.client.get("/auth/keys", headers=headers)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items"}
    assert len(body["items"]) == 2
    by_id = {item["id"]: item for item in body["items"]}
    for issued in (first, second):
        listed = by_id[issued["id"]]
        assert set(listed) == LISTED_FIELDS
        assert "key" not in listed
        for field in ("name", "prefix", "scopes", "created_at", "expires_at"):
            assert listed[field] == issued[field], field
        assert listed["last_used_at"] is None
        assert listed["revoked_at"] is None
        assert issued["key"] not in response.text
        assert secret_of(issued) not in response.text
        assert secret_of(issued)[:12] not in response.text


async def test_the_list_shows_only_the_callers_own_keys(harness: Harness) -> None:
    alice = await harness.user_with_token("alice")
    bob = await harness.user_with_token("bob")
    mine = await create_key(harness, alice)
    assert await list_keys(harness, bob) == []
    await create_key(harness, bob)
    assert [k["id"] for k in await list_keys(harness, alice)] == [mine["id"]]


async def test_the_key_is_stored_only_as_a_keyed_hash(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)
    async with harness.bastion.db.transaction() as session:
        row = await session.get(ApiKey, issued["id"])
        assert row is not None
        values = [str(getattr(row, column.key)) for column in ApiKey.__table__.columns]
    for value in values:
        assert issued["key"] not in value
        assert secret_of(issued) not in value
    assert re.fullmatch(r"[0-9a-f]{64}", row.key_hash)


# ------------------------------------------------------------------------ authenticate


async def test_a_key_authenticates_and_me_says_api_key(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)
    await harness.client.post("/items", json={"name": "pen"}, headers=headers)

    items = await harness.client.get("/items", headers=api_key(issued["key"]))
    assert items.status_code == 200, items.text
    assert [i["name"] for i in items.json()["items"]] == ["pen"]

    me = await harness.client.get("/auth/me", headers=api_key(issued["key"]))
    assert me.status_code == 200
    body = me.json()
    assert body["auth"] == "api_key"
    assert body["username"] == "alice"
    assert set(body["scopes"]) == USER_SCOPES


async def test_a_read_only_key_cannot_write(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers, scopes=["items:read"])
    assert (await harness.client.get("/items", headers=api_key(issued["key"]))).status_code == 200
    response = await harness.client.post(
        "/items", json={"name": "pen"}, headers=api_key(issued["key"])
    )
    assert_problem(response, 403)
    me = await harness.client.get("/auth/me", headers=api_key(issued["key"]))
    assert me.json()["scopes"] == ["items:read"]


async def test_a_key_can_create_narrower_keys_but_not_wider_ones(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    manager = await create_key(harness, headers, scopes=["keys:manage", "items:read"])
    child = await create_key(harness, api_key(manager["key"]))
    assert set(child["scopes"]) == {"keys:manage", "items:read"}
    wider = await harness.client.post(
        "/auth/keys", json={"name": "x", "scopes": ["items:write"]}, headers=api_key(manager["key"])
    )
    assert_problem(wider, 403)
    reader = await create_key(harness, headers, scopes=["items:read"])
    no_manage = await harness.client.post(
        "/auth/keys", json={"name": "x"}, headers=api_key(reader["key"])
    )
    assert_problem(no_manage, 403)


async def test_a_key_loses_the_scopes_of_a_removed_role(harness: Harness) -> None:
    root_id = await harness.create_user("root", admin=True)
    tokens = await harness.login("root")
    issued = await create_key(
        harness, bearer(tokens["access_token"]), scopes=["items:read", "metrics:read"]
    )
    me = await harness.client.get("/auth/me", headers=api_key(issued["key"]))
    assert set(me.json()["scopes"]) == {"items:read", "metrics:read"}

    await set_user(harness, root_id, roles="user")
    harness.bastion.users.invalidate(root_id)

    me = await harness.client.get("/auth/me", headers=api_key(issued["key"]))
    assert me.status_code == 200
    assert me.json()["scopes"] == ["items:read"]
    assert (await harness.client.get("/items", headers=api_key(issued["key"]))).status_code == 200


async def test_a_key_of_a_user_without_roles_gets_403(harness: Harness) -> None:
    user_id = await harness.create_user("alice")
    tokens = await harness.login("alice")
    issued = await create_key(harness, bearer(tokens["access_token"]))
    await set_user(harness, user_id, roles="")
    harness.bastion.users.invalidate(user_id)
    response = await harness.client.get("/items", headers=api_key(issued["key"]))
    assert_problem(response, 403)


async def test_a_disabled_users_key_is_401_within_a_second(harness: Harness) -> None:
    user_id = await harness.create_user("alice")
    tokens = await harness.login("alice")
    issued = await create_key(harness, bearer(tokens["access_token"]))
    assert (await harness.client.get("/items", headers=api_key(issued["key"]))).status_code == 200

    await set_user(harness, user_id, disabled=True)  # as another worker would, cache untold
    await asyncio.sleep(1.1)

    assert_key_refused(await harness.client.get("/items", headers=api_key(issued["key"])))


async def test_an_expired_key_is_401(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers, expires_in_days=1)
    assert (await harness.client.get("/items", headers=api_key(issued["key"]))).status_code == 200

    later = time.time() + 86_400 + 60
    harness.bastion.api_keys._clock = lambda: later

    assert_key_refused(await harness.client.get("/items", headers=api_key(issued["key"])))


async def test_a_key_expired_in_the_database_is_401(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)
    async with harness.bastion.db.transaction() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == issued["id"])
            .values(expires_at=datetime.fromisoformat("2020-01-01T00:00:00+00:00"))
        )
    await asyncio.sleep(1.1)  # another worker's change: seen within a second
    assert_key_refused(await harness.client.get("/items", headers=api_key(issued["key"])))


async def test_last_used_at_is_recorded_after_use(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)
    before = datetime.fromisoformat(issued["created_at"])
    (listed,) = await list_keys(harness, headers)
    assert listed["last_used_at"] is None

    assert (await harness.client.get("/items", headers=api_key(issued["key"]))).status_code == 200
    await harness.bastion.api_keys.flush_last_used()

    (listed,) = await list_keys(harness, headers)
    assert listed["last_used_at"] is not None
    assert when(listed["last_used_at"]) >= before


async def test_a_failed_attempt_does_not_count_as_use(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)
    forged = new_api_key(issued["id"])  # the real id, a guessed secret, a valid checksum
    assert_key_refused(await harness.client.get("/items", headers=api_key(forged)))
    await harness.bastion.api_keys.flush_last_used()
    (listed,) = await list_keys(harness, headers)
    assert listed["last_used_at"] is None


async def test_a_key_record_is_read_at_most_once_a_second(harness: Harness) -> None:
    """SPEC §8: no database read per request on the key lookup's hot path."""
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)
    started = time.monotonic()
    with key_reads(harness) as reads:
        for _ in range(20):
            response = await harness.client.get("/secure-data", headers=api_key(issued["key"]))
            assert response.status_code == 200
    elapsed = time.monotonic() - started
    assert len(reads) <= 1 + int(elapsed), (len(reads), elapsed)


# ----------------------------------------------------------------------- per-key limit


async def test_a_per_key_rate_limit_answers_429_on_the_third_request(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    limited = await create_key(harness, headers, rate_limit="2/minute")
    other = await create_key(harness, headers)
    key = api_key(limited["key"])

    first = await harness.client.get("/items", headers=key)
    second = await harness.client.get("/items", headers=key)
    third = await harness.client.get("/items", headers=key)

    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert '"key"' in first.headers["ratelimit-policy"]
    assert '"key"' in third.headers["ratelimit-policy"]
    assert third.headers["content-type"] == PROBLEM_JSON
    assert third.json()["type"] == "https://iana.org/assignments/http-problem-types#quota-exceeded"
    assert int(third.headers["retry-after"]) >= 1
    assert (await harness.client.get("/items", headers=api_key(other["key"]))).status_code == 200
    assert (await harness.client.get("/items", headers=headers)).status_code == 200


@pytest.mark.parametrize("limit", ["often", "5/fortnight", "", "x" * 40])
async def test_a_malformed_per_key_limit_is_422(harness: Harness, limit: str) -> None:
    headers = await harness.user_with_token("alice")
    response = await harness.client.post(
        "/auth/keys", json={"name": "ci", "rate_limit": limit}, headers=headers
    )
    body = assert_problem(response, 422)
    assert "rate_limit" in error_fields(body)


# --------------------------------------------------------------------- revoke / rotate


async def test_revoking_a_key_is_204_and_the_key_is_401_at_once(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)
    assert (await harness.client.get("/items", headers=api_key(issued["key"]))).status_code == 200

    response = await harness.client.delete(f"/auth/keys/{issued['id']}", headers=headers)

    assert response.status_code == 204
    assert response.content == b""
    assert_key_refused(await harness.client.get("/items", headers=api_key(issued["key"])))
    (listed,) = await list_keys(harness, headers)
    assert listed["revoked_at"] is not None
    when(listed["revoked_at"])


async def test_a_revoked_key_cannot_be_brought_back_by_rotating_it(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)
    await harness.client.delete(f"/auth/keys/{issued['id']}", headers=headers)
    response = await harness.client.post(f"/auth/keys/{issued['id']}/rotate", headers=headers)
    assert response.status_code in (403, 404, 409), response.text
    assert "bst_" not in response.text
    assert_key_refused(await harness.client.get("/items", headers=api_key(issued["key"])))


async def test_another_users_key_is_404_for_delete_and_rotate(harness: Harness) -> None:
    alice = await harness.user_with_token("alice")
    bob = await harness.user_with_token("bob")
    issued = await create_key(harness, alice)

    delete = await harness.client.delete(f"/auth/keys/{issued['id']}", headers=bob)
    rotate = await harness.client.post(f"/auth/keys/{issued['id']}/rotate", headers=bob)
    missing_delete = await harness.client.delete("/auth/keys/nosuchkey123", headers=bob)
    missing_rotate = await harness.client.post("/auth/keys/nosuchkey123/rotate", headers=bob)

    for response in (delete, rotate, missing_delete, missing_rotate):
        assert_problem(response, 404)
        assert "bst_" not in response.text
    assert delete.json() == missing_delete.json()
    assert rotate.json() == missing_rotate.json()
    # Alice's key is untouched.
    assert (await harness.client.get("/items", headers=api_key(issued["key"]))).status_code == 200
    (listed,) = await list_keys(harness, alice)
    assert listed["revoked_at"] is None


async def test_rotation_keeps_the_key_but_replaces_its_secret(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers, name="deploy", scopes=["items:read"])
    assert (await harness.client.get("/items", headers=api_key(issued["key"]))).status_code == 200

    response = await harness.client.post(f"/auth/keys/{issued['id']}/rotate", headers=headers)

    assert response.status_code == 200, response.text
    assert "no-store" in response.headers["cache-control"]
    rotated = response.json()
    assert set(rotated) == ISSUED_FIELDS
    for field in ("id", "name", "scopes", "expires_at", "prefix"):
        assert rotated[field] == issued[field], field
    assert rotated["key"] != issued["key"]
    assert rotated["key"].startswith(rotated["prefix"])
    assert secret_of(rotated) != secret_of(issued)
    assert_key_refused(await harness.client.get("/items", headers=api_key(issued["key"])))
    new = await harness.client.get("/items", headers=api_key(rotated["key"]))
    assert new.status_code == 200
    (listed,) = await list_keys(harness, headers)
    assert secret_of(rotated) not in str(listed)


async def test_rotating_twice_kills_every_earlier_secret(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)
    first = (await harness.client.post(f"/auth/keys/{issued['id']}/rotate", headers=headers)).json()
    second = (
        await harness.client.post(f"/auth/keys/{issued['id']}/rotate", headers=headers)
    ).json()
    for dead in (issued, first):
        assert_key_refused(await harness.client.get("/items", headers=api_key(dead["key"])))
    assert (await harness.client.get("/items", headers=api_key(second["key"]))).status_code == 200


async def test_a_password_change_leaves_api_keys_working(harness: Harness) -> None:
    """SPEC §4.2: API keys are separate credentials and survive a password change."""
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)
    changed = await harness.client.post(
        "/auth/password",
        json={"current_password": STRONG_PASSWORD, "new_password": "another long passphrase"},
        headers=headers,
    )
    assert changed.status_code == 204, changed.text
    assert (await harness.client.get("/items", headers=api_key(issued["key"]))).status_code == 200


# ------------------------------------------------------------------- ?api_key= opt-in


async def test_the_query_parameter_is_ignored_on_normal_routes(harness: Harness) -> None:
    headers = await harness.user_with_token("alice")
    issued = await create_key(harness, headers)

    response = await harness.client.get("/items", params={"api_key": issued["key"]})
    assert_problem(response, 401)
    assert issued["key"] not in response.text

    # With a bearer token, the ignored parameter does not make the request ambiguous.
    both = await harness.client.get("/items", params={"api_key": issued["key"]}, headers=headers)
    assert both.status_code == 200


@asynccontextmanager
async def library_app(
    database_url: str, tmp_path: Path, build: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A team's own FastAPI app protected by Bastion, with routes added by ``build(app, b)``."""
    bastion = Bastion(make_settings(database_url, tmp_path))
    app = FastAPI(lifespan=bastion.lifespan)
    bastion.protect(app)
    build(app, bastion)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        bastion.lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        if not bastion.db.is_sqlite:
            await bastion.db.upgrade()
        yield client


async def key_for_new_user(client: httpx.AsyncClient, username: str) -> tuple[str, str]:
    """Sign up, log in and create a key over HTTP; returns ``(access_token, key)``."""
    registered = await client.post(
        "/auth/register", json={"username": username, "password": STRONG_PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    tokens = await client.post(
        "/auth/token",
        data={"grant_type": "password", "username": username, "password": STRONG_PASSWORD},
    )
    assert tokens.status_code == 200, tokens.text
    access = tokens.json()["access_token"]
    issued = await client.post("/auth/keys", json={"name": "dl"}, headers=bearer(access))
    assert issued.status_code == 201, issued.text
    return access, issued.json()["key"]


async def exercise_query_route(client: httpx.AsyncClient) -> None:
    access, key = await key_for_new_user(client, "alice")

    ok = await client.get("/download", params={"api_key": key})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"user": "alice", "auth": "api_key"}

    header = await client.get("/download", headers=api_key(key))
    assert header.status_code == 200

    bad = await client.get(
        "/download", params={"api_key": key[:-1] + ("A" if key[-1] != "A" else "B")}
    )
    assert_key_refused(bad)

    both = await client.get("/download", params={"api_key": key}, headers=bearer(access))
    assert_problem(both, 400)

    # A key in the header and one in the query: never a guess at which was meant, whichever
    # of the two is the good one.
    for header, query in ((key, "bst_junk"), ("bst_junk", key), (key, key)):
        twice = await client.get(
            "/download", params={"api_key": query}, headers={"X-API-Key": header}
        )
        assert_problem(twice, 400)

    # The route that did not opt in still ignores the parameter.
    plain = await client.get("/plain", params={"api_key": key})
    assert_problem(plain, 401)


async def test_a_route_may_opt_in_to_the_query_parameter(database_url: str, tmp_path: Path) -> None:
    """SPEC §1/§4.4, through the library's own ``bastion.require`` (the documented ergonomics)."""

    def build(app: FastAPI, bastion: Bastion) -> None:
        @app.get("/download")
        async def download(
            principal: Principal = bastion.require(  # noqa: B008
                "items:read", api_key_in_query=True
            ),
        ) -> dict[str, str]:
            return {"user": principal.username, "auth": principal.kind.value}

        @app.get("/plain")
        async def plain(
            principal: Principal = bastion.require("items:read"),  # noqa: B008
        ) -> dict[str, str]:
            return {"user": principal.username}

    async with library_app(database_url, tmp_path, build) as client:
        await exercise_query_route(client)


async def test_a_route_may_opt_in_to_the_query_parameter_with_the_dependency(
    database_url: str, tmp_path: Path
) -> None:
    """The same, through ``bastion.api.dependencies.require`` that the reference routes use."""

    def build(app: FastAPI, _bastion: Bastion) -> None:
        @app.get("/download")
        async def download(
            principal: Principal = require_dependency(  # noqa: B008
                "items:read", api_key_in_query=True
            ),
        ) -> dict[str, str]:
            return {"user": principal.username, "auth": principal.kind.value}

        @app.get("/plain")
        async def plain(
            principal: Principal = require_dependency("items:read"),  # noqa: B008
        ) -> dict[str, str]:
            return {"user": principal.username}

    async with library_app(database_url, tmp_path, build) as client:
        await exercise_query_route(client)
