"""``/admin`` (SPEC §4.6): users, keys and the audit trail, for the ``admin`` role only.

Disabling and revoking are checked credential by credential (access token, refresh token,
session, API key), each within the one second SPEC §3 allows, and against a bystander whose
credentials must keep working.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.server import create_app
from bastion.settings import BastionSettings
from bastion.storage.repositories import login_failures
from tests.conftest import STRONG_PASSWORD, TEST_SECRET, Harness, make_settings, open_harness
from tests.integration.helpers import (
    RFC3339_UTC,
    USER_SCOPES,
    assert_invalid_token,
    assert_oauth_error,
    assert_problem,
    bearer,
    error_fields,
    password_login,
    refresh,
)

WRONG_PASSWORD = "not the password at all, sorry"
NEW_PASSWORD = "a brand new passphrase for them"
USER_FIELDS = {"id", "username", "roles", "disabled", "created_at"}
KEY_FIELDS = {
    "id",
    "name",
    "prefix",
    "scopes",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
    "user_id",
}
EVENT_FIELDS = {
    "id",
    "time",
    "type",
    "actor",
    "subject",
    "ip",
    "user_agent",
    "request_id",
    "outcome",
    "details",
}
WITHIN = 1.0
"""SPEC §3: a disabled or revoked user's credentials stop working within 1 s."""


# ----------------------------------------------------------------------------- helpers


@dataclass
class Account:
    """Every kind of credential one user can hold, each obtained over HTTP."""

    id: int
    username: str
    access_token: str
    refresh_token: str
    key: str
    key_id: str
    session: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)

    @property
    def key_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    @property
    def session_headers(self) -> dict[str, str]:
        return {"Cookie": f"bastion_session={self.session}; bastion_csrf={self.csrf}"}


async def account(harness: Harness, username: str) -> Account:
    user_id = await harness.create_user(username)
    tokens = await harness.login(username)
    issued = await harness.client.post(
        "/auth/keys", json={"name": f"{username}-key"}, headers=bearer(tokens["access_token"])
    )
    assert issued.status_code == 201, issued.text
    session = await harness.client.post(
        "/auth/session", json={"username": username, "password": STRONG_PASSWORD}
    )
    assert session.status_code == 200, session.text
    harness.client.cookies.clear()
    return Account(
        user_id,
        username,
        tokens["access_token"],
        tokens["refresh_token"],
        issued.json()["key"],
        issued.json()["id"],
        session.cookies["bastion_session"],
        session.json()["csrf_token"],
    )


async def eventually(check: Callable[[], Awaitable[bool]], within: float = WITHIN) -> float:
    """Seconds until ``check`` held; fails when it did not within ``within`` (plus a little
    slack for the test's own requests)."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > within + 0.25:
            pytest.fail(f"not within {within} s")
        await asyncio.sleep(0.05)


async def status_of(harness: Harness, path: str, headers: dict[str, str]) -> int:
    return (await harness.client.get(path, headers=headers)).status_code


async def assert_account_refused(harness: Harness, who: Account) -> None:
    """Every credential of ``who`` is refused: bearer (401 invalid_token), API key, session,
    and the refresh token (invalid_grant)."""
    assert_invalid_token(await harness.client.get("/auth/me", headers=who.headers))
    assert_problem(await harness.client.get("/items", headers=who.key_headers), 401)
    assert_problem(await harness.client.get("/items", headers=who.session_headers), 401)
    assert_oauth_error(await refresh(harness, who.refresh_token), "invalid_grant")


async def assert_account_works(harness: Harness, who: Account) -> None:
    assert (await harness.client.get("/auth/me", headers=who.headers)).status_code == 200
    assert (await harness.client.get("/items", headers=who.key_headers)).status_code == 200
    assert (await harness.client.get("/items", headers=who.session_headers)).status_code == 200
    assert (await refresh(harness, who.refresh_token)).status_code == 200


async def audit(harness: Harness, admin: dict[str, str], **params: Any) -> httpx.Response:
    return await harness.client.get("/admin/audit", params=params, headers=admin)


async def events(harness: Harness, admin: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = await audit(harness, admin, limit=100, **params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def cursor_of(value: Any) -> str:
    """A cursor in this server's encoding, with any value: forged on purpose."""
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
async def admin(harness: Harness) -> dict[str, str]:
    return await harness.user_with_token("root", admin=True)


ADMIN_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/admin/users", None),
    ("POST", "/admin/users", {"username": "intruder", "password": STRONG_PASSWORD}),
    ("PATCH", "/admin/users/{user_id}", {"roles": ["admin", "user"]}),
    ("POST", "/admin/users/{user_id}/revoke", None),
    ("POST", "/admin/users/{user_id}/unlock", None),
    ("GET", "/admin/keys", None),
    ("GET", "/admin/audit", None),
]


# ----------------------------------------------------------------------------- who may


def test_the_list_of_admin_routes_is_complete(tmp_path: Path) -> None:
    """The 403 test below must cover every ``/admin`` route the app has, new ones included."""
    app = create_app(BastionSettings(secret_key=TEST_SECRET, data_dir=tmp_path))
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/admin")
        for method in operations
    }
    assert routes == {(method, path) for method, path, _ in ADMIN_CALLS}


async def test_every_admin_route_refuses_non_admins(
    harness: Harness, admin: dict[str, str]
) -> None:
    mallory = await account(harness, "mallory")
    victim = await account(harness, "victim")
    credentials = {
        "bearer": mallory.headers,
        "api key": mallory.key_headers,
        "session": {**mallory.session_headers, "X-CSRF-Token": mallory.csrf},
    }
    for kind, headers in credentials.items():
        for method, template, body in ADMIN_CALLS:
            path = template.format(user_id=victim.id)
            response = await harness.client.request(method, path, json=body, headers=headers)
            assert_problem(response, 403)
            assert "intruder" not in response.text, (kind, method, path)
            challenge = response.headers.get("www-authenticate")
            if kind == "bearer":  # SPEC §3: a missing role is insufficient_scope for bearers
                assert challenge is not None, (method, path)
                assert challenge.startswith('Bearer realm="bastion", error="insufficient_scope"')
                assert 'scope="' in challenge
                assert "admin" in challenge
            else:
                assert challenge is None, (kind, method, path)
    # Nothing was done on their behalf.
    users = (await harness.client.get("/admin/users", headers=admin)).json()["items"]
    assert {u["username"] for u in users} == {"root", "mallory", "victim"}
    assert next(u for u in users if u["username"] == "victim")["roles"] == ["user"]
    await assert_account_works(harness, victim)


async def test_admin_routes_without_credentials_are_401(harness: Harness) -> None:
    victim_id = await harness.create_user("victim")
    for method, template, body in ADMIN_CALLS:
        path = template.format(user_id=victim_id)
        response = await harness.client.request(method, path, json=body)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith('Bearer realm="bastion"')


async def test_an_admins_narrowed_credentials_cannot_administer(
    harness: Harness, admin: dict[str, str]
) -> None:
    """SPEC §4.7: a token or key carries the scopes it was granted, narrowed by the request.
    An admin's key made for a metrics scraper, or a token asked for ``items:read`` only, holds
    no ``admin`` scope and must not reach ``/admin`` (least privilege: a leaked scraper key is
    not an administrator's credential)."""
    victim_id = await harness.create_user("victim")
    narrow = await harness.login("root", scope="items:read")
    assert narrow["scope"] == "items:read"
    issued = await harness.client.post(
        "/auth/keys", json={"name": "scraper", "scopes": ["metrics:read"]}, headers=admin
    )
    assert issued.status_code == 201, issued.text
    for headers in (bearer(narrow["access_token"]), {"X-API-Key": issued.json()["key"]}):
        for method, template, body in ADMIN_CALLS:
            path = template.format(user_id=victim_id)
            response = await harness.client.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, (method, path, response.status_code)
    users = (await harness.client.get("/admin/users", headers=admin)).json()["items"]
    assert {u["username"] for u in users} == {"root", "victim"}


# ----------------------------------------------------------------------------- listing users


async def test_users_are_listed_in_pages_that_never_overlap(
    harness: Harness, admin: dict[str, str]
) -> None:
    for n in range(7):
        await harness.create_user(f"user{n}")
    seen: list[int] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await harness.client.get("/admin/users", params=params, headers=admin)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        for user in page["items"]:
            assert set(user) == USER_FIELDS
            assert re.match(RFC3339_UTC, user["created_at"])
            assert user["disabled"] is False
        seen.extend(u["id"] for u in page["items"])
        sizes.append(len(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
        assert cursor
    assert sizes == [3, 3, 2]
    assert len(seen) == len(set(seen)) == 8
    assert seen == sorted(seen)


async def test_the_default_page_is_50_and_limit_is_bounded(
    harness: Harness, admin: dict[str, str]
) -> None:
    for n in range(51):
        await harness.create_user(f"member{n:02d}")
    first = (await harness.client.get("/admin/users", headers=admin)).json()
    assert len(first["items"]) == 50
    assert first["next_cursor"] is not None
    rest = await harness.client.get(
        "/admin/users", params={"cursor": first["next_cursor"]}, headers=admin
    )
    assert len(rest.json()["items"]) == 2
    assert rest.json()["next_cursor"] is None
    everything = await harness.client.get("/admin/users", params={"limit": 100}, headers=admin)
    assert len(everything.json()["items"]) == 52
    assert everything.json()["next_cursor"] is None
    one = await harness.client.get("/admin/users", params={"limit": 1}, headers=admin)
    assert len(one.json()["items"]) == 1
    for path in ("/admin/users", "/admin/keys", "/admin/audit"):
        for limit in ("0", "101", "-1", "ten"):
            response = await harness.client.get(path, params={"limit": limit}, headers=admin)
            body = assert_problem(response, 422)
            assert error_fields(body) == ["limit"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "eyJhZnRlciI6",  # truncated
        cursor_of({"after": "abc"}),
        cursor_of({"after": True}),
        cursor_of({"before": 3}),
        cursor_of([1, 2]),
        cursor_of(None),
        "x" * 300,
    ],
)
async def test_an_invalid_cursor_is_422_on_every_list(
    harness: Harness, admin: dict[str, str], cursor: str
) -> None:
    for path in ("/admin/users", "/admin/audit"):
        response = await harness.client.get(path, params={"cursor": cursor}, headers=admin)
        body = assert_problem(response, 422)
        assert error_fields(body) == ["cursor"]


async def test_a_key_cursor_is_not_a_user_cursor(harness: Harness, admin: dict[str, str]) -> None:
    assert_problem(
        await harness.client.get(
            "/admin/keys", params={"cursor": cursor_of({"after": 5})}, headers=admin
        ),
        422,
    )


# ----------------------------------------------------------------------------- creating users


async def test_an_admin_creates_users(harness: Harness, admin: dict[str, str]) -> None:
    response = await harness.client.post(
        "/admin/users", json={"username": "Zoe", "password": STRONG_PASSWORD}, headers=admin
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == USER_FIELDS
    assert body["username"] == "zoe"
    assert body["roles"] == ["user"]
    assert body["disabled"] is False
    assert re.match(RFC3339_UTC, body["created_at"])
    assert STRONG_PASSWORD not in response.text
    tokens = await harness.login("zoe")
    assert set(tokens["scope"].split()) == USER_SCOPES

    boss = await harness.client.post(
        "/admin/users",
        json={"username": "boss", "password": STRONG_PASSWORD, "roles": ["admin", "user"]},
        headers=admin,
    )
    assert boss.status_code == 201, boss.text
    assert boss.json()["roles"] == ["admin", "user"]
    boss_token = await harness.login("boss")
    listed = await harness.client.get("/admin/users", headers=bearer(boss_token["access_token"]))
    assert listed.status_code == 200

    created = await events(harness, admin, type="user_created", actor="root")
    assert [(e["subject"], e["details"]["roles"]) for e in created] == [
        ("boss", ["admin", "user"]),
        ("zoe", ["user"]),
        ("root", ["admin", "user"]),  # the fixture's own admin, created without an actor
    ]


async def test_an_unknown_role_is_422_and_creates_nothing(
    harness: Harness, admin: dict[str, str]
) -> None:
    response = await harness.client.post(
        "/admin/users",
        json={"username": "zoe", "password": STRONG_PASSWORD, "roles": ["user", "wizard"]},
        headers=admin,
    )
    body = assert_problem(response, 422)
    assert error_fields(body) == ["roles"]
    assert STRONG_PASSWORD not in response.text
    assert (await password_login(harness, "zoe", STRONG_PASSWORD)).status_code == 400
    users = (await harness.client.get("/admin/users", headers=admin)).json()["items"]
    assert [u["username"] for u in users] == ["root"]


async def test_a_taken_name_is_409(harness: Harness, admin: dict[str, str]) -> None:
    await harness.create_user("zoe")
    for name in ("zoe", "ZOE", "root"):
        response = await harness.client.post(
            "/admin/users", json={"username": name, "password": NEW_PASSWORD}, headers=admin
        )
        assert_problem(response, 409)
    # The existing account keeps its password.
    assert (await password_login(harness, "zoe", STRONG_PASSWORD)).status_code == 200
    assert (await password_login(harness, "zoe", NEW_PASSWORD)).status_code == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "zoe", "password": "short"}, "password"),
        ({"username": "zoe", "password": "password1234"}, "password"),
        ({"username": "z", "password": STRONG_PASSWORD}, "username"),
        ({"username": "zoe"}, "password"),
        ({"username": "zoe", "password": STRONG_PASSWORD, "disabled": True}, "disabled"),
        ({"username": "zoe", "password": STRONG_PASSWORD, "id": 1}, "id"),
        ({"username": "zoe", "password": STRONG_PASSWORD, "roles": "admin"}, "roles"),
    ],
)
async def test_invalid_user_bodies_are_422(
    harness: Harness, admin: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await harness.client.post("/admin/users", json=body, headers=admin)
    problem = assert_problem(response, 422)
    assert field in error_fields(problem) or field in str(problem["errors"])
    if "password" in body:
        assert body["password"] not in json.dumps(problem["errors"])


# ----------------------------------------------------------------------------- changing users


@pytest.mark.parametrize("loose", ["yes", "true", "false", 1, 0, "1", "on"])
async def test_disabled_must_be_a_json_boolean(
    harness: Harness, admin: dict[str, str], loose: object
) -> None:
    """An admin body is read strictly: ``"yes"`` or ``1`` is a 422, never a guess that
    disables (or re-enables) an account."""
    bob = await account(harness, "bob")
    response = await harness.client.patch(
        f"/admin/users/{bob.id}", json={"disabled": loose}, headers=admin
    )
    problem = assert_problem(response, 422)
    assert "disabled" in error_fields(problem)
    assert await status_of(harness, "/items", bob.headers) == 200
    assert await events(harness, admin, type="user_disabled") == []
    assert await events(harness, admin, type="user_changed") == []


async def test_dropping_the_user_role_strips_live_scopes_within_a_second(
    harness: Harness, admin: dict[str, str]
) -> None:
    bob = await account(harness, "bob")
    assert await status_of(harness, "/items", bob.headers) == 200

    response = await harness.client.patch(
        f"/admin/users/{bob.id}", json={"roles": []}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == []

    async def token_lost_items() -> bool:
        return await status_of(harness, "/items", bob.headers) == 403

    await eventually(token_lost_items)
    me = await harness.client.get("/auth/me", headers=bob.headers)
    assert me.status_code == 200
    assert not {s for s in me.json()["scopes"] if s.startswith("items:")}
    assert await status_of(harness, "/items", bob.key_headers) == 403
    assert await status_of(harness, "/items", bob.session_headers) == 403
    # A refresh cannot bring the scopes back either.
    renewed = await refresh(harness, bob.refresh_token)
    if renewed.status_code == 200:
        assert not {s for s in renewed.json()["scope"].split() if s.startswith("items:")}

    changed = await events(harness, admin, type="user_changed")
    assert len(changed) == 1
    assert changed[0]["actor"] == "root"
    assert changed[0]["subject"] == "bob"
    assert changed[0]["details"]["roles_before"] == ["user"]
    assert changed[0]["details"]["roles_after"] == []


async def test_bad_changes_are_refused_and_change_nothing(
    harness: Harness, admin: dict[str, str]
) -> None:
    bob_id = await harness.create_user("bob")
    for body in (
        {"roles": ["wizard"]},
        {"roles": ["user"], "username": "mallory"},
        {"disabled": "perhaps"},
        {"roles": "admin"},
    ):
        response = await harness.client.patch(f"/admin/users/{bob_id}", json=body, headers=admin)
        assert_problem(response, 422)
    assert_problem(
        await harness.client.patch("/admin/users/999999", json={"roles": []}, headers=admin), 404
    )
    assert_problem(
        await harness.client.patch("/admin/users/abc", json={"roles": []}, headers=admin), 422
    )
    users = (await harness.client.get("/admin/users", headers=admin)).json()["items"]
    bob = next(u for u in users if u["id"] == bob_id)
    assert bob["username"] == "bob"
    assert bob["roles"] == ["user"]
    assert bob["disabled"] is False
    assert await events(harness, admin, type="user_changed") == []


async def test_disabling_refuses_every_credential_within_a_second(
    harness: Harness, admin: dict[str, str]
) -> None:
    bob = await account(harness, "bob")
    carol = await account(harness, "carol")

    response = await harness.client.patch(
        f"/admin/users/{bob.id}", json={"disabled": True}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["disabled"] is True

    async def token_refused() -> bool:
        return await status_of(harness, "/auth/me", bob.headers) == 401

    await eventually(token_refused)
    await assert_account_refused(harness, bob)
    assert_oauth_error(await password_login(harness, "bob", STRONG_PASSWORD), "invalid_grant")
    session_login = await harness.client.post(
        "/auth/session", json={"username": "bob", "password": STRONG_PASSWORD}
    )
    assert_problem(session_login, 401)
    harness.client.cookies.clear()
    await assert_account_works(harness, carol)

    disabled = await events(harness, admin, type="user_disabled")
    assert [(e["actor"], e["subject"], e["outcome"]) for e in disabled] == [
        ("root", "bob", "success")
    ]
    assert disabled[0]["details"] == {
        "refresh_families_ended": 1,
        "sessions_ended": 1,
        "api_keys_revoked": 1,
    }


async def test_re_enabling_does_not_revive_old_credentials(
    harness: Harness, admin: dict[str, str]
) -> None:
    bob = await account(harness, "bob")
    for disabled in (True, False):
        response = await harness.client.patch(
            f"/admin/users/{bob.id}", json={"disabled": disabled}, headers=admin
        )
        assert response.status_code == 200, response.text
        assert response.json()["disabled"] is disabled
    await asyncio.sleep(WITHIN + 0.1)  # past any cache: what is refused now stays refused
    await assert_account_refused(harness, bob)
    # The person can come back with their password; the new credentials work.
    fresh = await harness.login("bob")
    assert (
        await harness.client.get("/items", headers=bearer(fresh["access_token"]))
    ).status_code == (200)
    changed = await events(harness, admin, type="user_changed")
    assert [e["details"] for e in changed] == [{"disabled": False}]


# ----------------------------------------------------------------------------- revoking


async def test_revoking_a_user_ends_every_credential_and_only_theirs(
    harness: Harness, admin: dict[str, str]
) -> None:
    bob = await account(harness, "bob")
    other_login = await harness.login("bob")  # a second refresh family
    carol = await account(harness, "carol")

    response = await harness.client.post(f"/admin/users/{bob.id}/revoke", headers=admin)
    assert response.status_code == 204
    assert response.content == b""

    async def all_refused() -> bool:
        return await status_of(harness, "/auth/me", bob.headers) == 401

    await eventually(all_refused)
    await assert_account_refused(harness, bob)
    assert_invalid_token(
        await harness.client.get("/auth/me", headers=bearer(other_login["access_token"]))
    )
    assert_oauth_error(await refresh(harness, other_login["refresh_token"]), "invalid_grant")
    await assert_account_works(harness, carol)

    keys = (await harness.client.get("/admin/keys", headers=admin)).json()["items"]
    by_owner = {k["user_id"]: k for k in keys}
    assert by_owner[bob.id]["revoked_at"] is not None
    assert by_owner[carol.id]["revoked_at"] is None

    revoked = await events(harness, admin, type="user_revoked")
    assert [(e["actor"], e["subject"]) for e in revoked] == [("root", "bob")]
    assert revoked[0]["details"] == {
        "refresh_families_ended": 2,
        "sessions_ended": 1,
        "api_keys_revoked": 1,
    }
    # Revoking is not disabling: the person may log in again.
    again = await harness.login("bob")
    assert (await status_of(harness, "/items", bearer(again["access_token"]))) == 200


async def test_revoking_an_unknown_user_is_404(harness: Harness, admin: dict[str, str]) -> None:
    for user_id in ("999999", "0"):
        response = await harness.client.post(f"/admin/users/{user_id}/revoke", headers=admin)
        assert_problem(response, 404)
    assert await events(harness, admin, type="user_revoked") == []


# ----------------------------------------------------------------------------- unlocking


async def test_unlock_lifts_a_lockout(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, lockout_threshold=2)
    async with open_harness(settings) as harness:
        admin = await harness.user_with_token("root", admin=True)
        bob_id = await harness.create_user("bob")
        for _ in range(2):
            assert (await password_login(harness, "bob", WRONG_PASSWORD)).status_code == 400
        locked = await password_login(harness, "bob", STRONG_PASSWORD)
        assert_problem(locked, 429)
        assert int(locked.headers["retry-after"]) > 0

        response = await harness.client.post(f"/admin/users/{bob_id}/unlock", headers=admin)
        assert response.status_code == 204
        assert (await password_login(harness, "bob", STRONG_PASSWORD)).status_code == 200
        # Unlocking a user who is not locked is harmless; an unknown user is 404.
        again = await harness.client.post(f"/admin/users/{bob_id}/unlock", headers=admin)
        assert again.status_code == 204
        missing = await harness.client.post("/admin/users/999999/unlock", headers=admin)
        assert_problem(missing, 404)
        unlocked = await events(harness, admin, type="user_changed", actor="root")
        assert [(e["subject"], e["details"]) for e in unlocked] == [("bob", {"unlocked": True})] * 2


async def test_an_unlock_that_fails_leaves_no_event(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC §6: the unlock and its user_changed event are one transaction; an event telling of
    an unlock that never happened would mislead whoever reads the trail."""
    settings = make_settings(database_url, tmp_path, lockout_threshold=2)
    async with open_harness(settings) as harness:
        admin = await harness.user_with_token("root", admin=True)
        bob_id = await harness.create_user("bob")
        for _ in range(2):
            assert (await password_login(harness, "bob", WRONG_PASSWORD)).status_code == 400

        def broken(*_args: Any, **_kwargs: Any) -> bool:
            raise RuntimeError("injected failure while lifting the lock")

        monkeypatch.setattr(login_failures, "remove", broken)
        response = await harness.client.post(f"/admin/users/{bob_id}/unlock", headers=admin)
        assert response.status_code == 500
        monkeypatch.undo()
        assert await events(harness, admin, type="user_changed") == []
        assert_problem(await password_login(harness, "bob", STRONG_PASSWORD), 429)


# ----------------------------------------------------------------------------- keys


async def test_admin_lists_every_key_without_secrets(
    harness: Harness, admin: dict[str, str]
) -> None:
    bob = await account(harness, "bob")
    carol = await account(harness, "carol")
    second = await harness.client.post(
        "/auth/keys", json={"name": "second", "scopes": ["items:read"]}, headers=bob.headers
    )
    assert second.status_code == 201
    await harness.client.delete(f"/auth/keys/{carol.key_id}", headers=carol.headers)

    seen: list[dict[str, Any]] = []
    texts: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await harness.client.get("/admin/keys", params=params, headers=admin)
        assert response.status_code == 200, response.text
        texts.append(response.text)
        seen.extend(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len({k["id"] for k in seen}) == 3
    for key in seen:
        assert set(key) == KEY_FIELDS
        assert key["prefix"].startswith("bst_")
        assert re.match(RFC3339_UTC, key["created_at"])
    owners = {k["id"]: k["user_id"] for k in seen}
    assert owners == {bob.key_id: bob.id, second.json()["id"]: bob.id, carol.key_id: carol.id}
    by_id = {k["id"]: k for k in seen}
    assert by_id[carol.key_id]["revoked_at"] is not None
    assert by_id[second.json()["id"]]["scopes"] == ["items:read"]
    everything = "\n".join(texts)
    for secret in (bob.key, carol.key, second.json()["key"]):
        assert secret not in everything
        assert secret.split("_")[2] not in everything  # the secret part alone
    assert "key_hash" not in everything


# ----------------------------------------------------------------------------- the audit trail


async def test_audit_events_are_newest_first_with_every_field(
    harness: Harness, admin: dict[str, str]
) -> None:
    await harness.create_user("bob")
    for _ in range(2):
        await password_login(harness, "bob", WRONG_PASSWORD)
    await harness.login("bob")
    listed = await events(harness, admin)
    assert [e["type"] for e in listed] == [
        "login_succeeded",
        "login_failed",
        "login_failed",
        "user_created",
        "login_succeeded",
        "user_created",
    ]
    ids = [e["id"] for e in listed]
    assert ids == sorted(ids, reverse=True)
    assert [e["time"] for e in listed] == sorted((e["time"] for e in listed), reverse=True)
    for event in listed:
        assert set(event) == EVENT_FIELDS
        assert re.match(RFC3339_UTC, event["time"])
        assert isinstance(event["details"], dict)


async def test_audit_filters_by_type_and_actor(harness: Harness, admin: dict[str, str]) -> None:
    await harness.create_user("bob")
    await harness.create_user("carol")
    for _ in range(3):
        await password_login(harness, "bob", WRONG_PASSWORD)
    await harness.login("carol")

    failed = await events(harness, admin, type="login_failed")
    assert len(failed) == 3
    assert {(e["type"], e["subject"]) for e in failed} == {("login_failed", "bob")}
    by_carol = await events(harness, admin, actor="carol")
    assert {e["type"] for e in by_carol} == {"user_created", "login_succeeded"}
    assert {e["actor"] for e in by_carol} == {"carol"}
    both = await events(harness, admin, type="login_succeeded", actor="carol")
    assert len(both) == 1
    assert await events(harness, admin, type="login_failed", actor="carol") == []
    assert await events(harness, admin, actor="nobody") == []
    assert_problem(await audit(harness, admin, type="not_an_event"), 422)
    assert_problem(await audit(harness, admin, actor="x" * 65), 422)


async def test_audit_filters_by_time(harness: Harness, admin: dict[str, str]) -> None:
    await harness.create_user("bob")
    middle = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await harness.create_user("carol")
    everything = await events(harness, admin)

    after = await events(harness, admin, since=rfc3339(middle))
    before = await events(harness, admin, until=rfc3339(middle))
    assert [e["subject"] for e in after] == ["carol"]
    assert "carol" not in {e["subject"] for e in before}
    assert len(after) + len(before) == len(everything)
    # The same instant written with another offset selects the same events.
    offset = middle.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert await events(harness, admin, since=offset) == after
    assert await events(harness, admin, since="2000-01-01T00:00:00Z") == everything
    assert await events(harness, admin, until="2000-01-01T00:00:00Z") == []
    future = rfc3339(datetime.now(UTC) + timedelta(hours=1))
    assert await events(harness, admin, since=future) == []
    assert await events(harness, admin, until=future) == everything
    window = await events(harness, admin, since="2000-01-01T00:00:00Z", until=future)
    assert window == everything


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00",  # no zone: ambiguous
        "2026-01-01",
        "yesterday",
        "2026-13-45T00:00:00Z",
        "",
    ],
)
async def test_a_time_that_is_not_rfc3339_with_a_zone_is_422(
    harness: Harness, admin: dict[str, str], value: str
) -> None:
    for name in ("since", "until"):
        body = assert_problem(await audit(harness, admin, **{name: value}), 422)
        assert error_fields(body) == [name]


async def test_audit_limit_and_cursor_paging_is_stable_while_events_are_written(
    harness: Harness, admin: dict[str, str]
) -> None:
    await harness.create_user("bob")
    for _ in range(4):
        await password_login(harness, "bob", WRONG_PASSWORD)
    original = [e["id"] for e in await events(harness, admin)]
    assert len(original) == 7

    first = (await audit(harness, admin, limit=3)).json()
    assert [e["id"] for e in first["items"]] == original[:3]
    # New events arrive between the pages.
    for _ in range(3):
        await password_login(harness, "bob", WRONG_PASSWORD)
    await harness.create_user("carol")
    second = (await audit(harness, admin, limit=3, cursor=first["next_cursor"])).json()
    third = (await audit(harness, admin, limit=3, cursor=second["next_cursor"])).json()
    assert [e["id"] for e in second["items"]] == original[3:6]
    assert [e["id"] for e in third["items"]] == original[6:]
    assert third["next_cursor"] is None
    # A new first page starts with the new events.
    newest = (await audit(harness, admin, limit=3)).json()["items"]
    assert newest[0]["subject"] == "carol"
    assert newest[0]["id"] > original[0]

    # Paging works together with a filter.
    pages: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"type": "login_failed", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await audit(harness, admin, **params)).json()
        pages.extend(e["id"] for e in page["items"])
        assert all(e["type"] == "login_failed" for e in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    failed = await events(harness, admin, type="login_failed")
    assert len(failed) >= 5
    assert pages == [e["id"] for e in failed]
    assert len(set(pages)) == len(pages)
