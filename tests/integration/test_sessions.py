"""Cookie sessions and CSRF as a browser-like client sees them (SPEC §4.3, §3, §5).

The client's own cookie jar is emptied after each login and cookies are sent by hand, so that
every test states exactly which cookies a request carries.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bastion.storage.models import Session
from tests.conftest import STRONG_PASSWORD, TEST_SECRET, Harness
from tests.integration.conftest import StartApp
from tests.integration.helpers import (
    PROBLEM_JSON,
    USER_SCOPES,
    assert_problem,
    bearer,
    set_user,
)

NEW_PASSWORD = "a different and long passphrase"
PLAIN = ("bastion_session", "bastion_csrf")
HOST = ("__Host-bastion_session", "__Host-bastion_csrf")
PRODUCTION = {"env": "production", "allowed_hosts": ["testserver"], "secret_key": TEST_SECRET}


# ----------------------------------------------------------------------------- helpers


@dataclass
class SetCookie:
    name: str
    value: str
    attributes: dict[str, str]

    def has(self, attribute: str) -> bool:
        return attribute.lower() in self.attributes


def set_cookies(response: httpx.Response) -> list[SetCookie]:
    parsed = []
    for header in response.headers.get_list("set-cookie"):
        first, *rest = header.split(";")
        name, _, value = first.strip().partition("=")
        attributes = {}
        for attribute in rest:
            key, _, val = attribute.strip().partition("=")
            attributes[key.lower()] = val
        parsed.append(SetCookie(name, value.strip('"'), attributes))
    return parsed


@dataclass
class Login:
    """A logged-in browser: its cookies, and the CSRF token its script read."""

    token: str
    csrf: str
    names: tuple[str, str]
    response: httpx.Response

    @property
    def cookies(self) -> dict[str, str]:
        """What the browser sends on every request: both cookies, never the header."""
        session_name, csrf_name = self.names
        return {"Cookie": f"{session_name}={self.token}; {csrf_name}={self.csrf}"}

    @property
    def unsafe(self) -> dict[str, str]:
        """What our own page's script sends with an unsafe request."""
        return {**self.cookies, "X-CSRF-Token": self.csrf}


async def session_login(
    h: Harness,
    username: str,
    password: str = STRONG_PASSWORD,
    *,
    client: httpx.AsyncClient | None = None,
) -> Login:
    client = client or h.client
    response = await client.post("/auth/session", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    client.cookies.clear()
    cookies = {c.name: c for c in set_cookies(response)}
    session_name = next(n for n in cookies if n.endswith("bastion_session"))
    csrf_name = next(n for n in cookies if n.endswith("bastion_csrf"))
    return Login(
        cookies[session_name].value,
        response.json()["csrf_token"],
        (session_name, csrf_name),
        response,
    )


async def new_user_session(h: Harness, username: str) -> Login:
    await h.create_user(username)
    return await session_login(h, username)


@asynccontextmanager
async def https_client(h: Harness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=h.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield client


def assert_csrf_refused(response: httpx.Response) -> None:
    body = assert_problem(response, 403)
    assert "csrf" in body["type"].lower()


async def item_names(h: Harness, headers: dict[str, str]) -> list[str]:
    response = await h.client.get("/items", headers=headers)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


def move_session_clock(h: Harness, seconds: float) -> None:
    later = time.time() + seconds
    h.bastion.sessions._clock = lambda: later


# -------------------------------------------------------------------------------- login


async def test_login_answers_the_csrf_token_and_two_cookies(harness: Harness) -> None:
    await harness.create_user("alice")
    response = await harness.client.post(
        "/auth/session", json={"username": "alice", "password": STRONG_PASSWORD}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"csrf_token"}
    assert isinstance(body["csrf_token"], str)
    assert len(body["csrf_token"]) >= 32
    assert "no-store" in response.headers["cache-control"]
    cookies = set_cookies(response)
    assert len(cookies) == 2
    by_name = {c.name: c for c in cookies}
    assert set(by_name) == set(PLAIN), "plain HTTP in development drops the __Host- prefix"
    for raw in response.headers.get_list("set-cookie"):
        assert "; SameSite=Lax" in raw, "spelled as SPEC §4.3 spells it"

    session = by_name["bastion_session"]
    assert session.has("httponly")
    assert session.attributes.get("samesite", "").lower() == "lax"
    assert session.attributes.get("path") == "/"
    assert not session.has("secure")
    assert not session.has("domain")
    assert len(session.value) >= 32
    assert "alice" not in session.value

    csrf = by_name["bastion_csrf"]
    assert not csrf.has("httponly"), "the page's scripts must read the CSRF cookie"
    assert csrf.attributes.get("samesite", "").lower() == "lax"
    assert csrf.attributes.get("path") == "/"
    assert not csrf.has("secure")
    assert csrf.value == body["csrf_token"]
    assert csrf.value != session.value


async def test_the_session_id_is_stored_only_hashed(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    async with harness.bastion.db.transaction() as session:
        rows = list((await session.execute(select(Session))).scalars())
    assert len(rows) == 1
    for column in Session.__table__.columns:
        assert login.token not in str(getattr(rows[0], column.key))


async def test_over_https_the_cookies_carry_the_host_prefix(harness: Harness) -> None:
    await harness.create_user("alice")
    async with https_client(harness) as client:
        login = await session_login(harness, "alice", client=client)
        me = await client.get("/auth/me", headers=login.cookies)
    assert me.status_code == 200
    assert_host_cookies(login.response)


def assert_host_cookies(response: httpx.Response) -> None:
    cookies = {c.name: c for c in set_cookies(response)}
    assert set(cookies) == set(HOST), cookies
    session, csrf = cookies["__Host-bastion_session"], cookies["__Host-bastion_csrf"]
    for cookie in (session, csrf):
        assert cookie.has("secure")
        assert cookie.attributes.get("path") == "/"
        assert not cookie.has("domain"), "__Host- cookies must not name a domain"
        assert cookie.attributes.get("samesite", "").lower() == "lax"
    assert session.has("httponly")
    assert not csrf.has("httponly")


async def test_plain_http_cookies_can_be_turned_off(start_app: StartApp) -> None:
    h = await start_app(allow_insecure_http_cookies=False)
    await h.create_user("alice")
    login = await session_login(h, "alice")
    assert_host_cookies(login.response)

    good = await h.client.get("/auth/me", headers={"Cookie": f"{HOST[0]}={login.token}"})
    assert good.status_code == 200
    plain = await h.client.get("/auth/me", headers={"Cookie": f"{PLAIN[0]}={login.token}"})
    assert_problem(plain, 401)


async def test_production_never_sets_cookies_without_the_host_prefix(
    start_app: StartApp,
) -> None:
    h = await start_app(**PRODUCTION)
    await h.create_user("alice")
    credentials = {"username": "alice", "password": STRONG_PASSWORD}

    over_http = await h.client.post("/auth/session", json=credentials)
    for cookie in set_cookies(over_http):
        assert cookie.name.startswith("__Host-"), cookie
        assert cookie.has("secure")

    async with https_client(h) as client:
        login = await session_login(h, "alice", client=client)
        assert_host_cookies(login.response)
        me = await client.get("/auth/me", headers=login.cookies)
        assert me.status_code == 200
        assert me.json()["auth"] == "session"
        plain = await client.get("/auth/me", headers={"Cookie": f"{PLAIN[0]}={login.token}"})
        assert_problem(plain, 401)


async def test_wrong_password_and_unknown_user_get_the_same_401(harness: Harness) -> None:
    await harness.create_user("alice")
    wrong = await harness.client.post(
        "/auth/session", json={"username": "alice", "password": "not the password at all"}
    )
    unknown = await harness.client.post(
        "/auth/session", json={"username": "nobody-here", "password": "not the password at all"}
    )

    for response in (wrong, unknown):
        assert_problem(response, 401)
        assert response.headers.get_list("set-cookie") == []
        assert "not the password at all" not in response.text
    assert wrong.json() == unknown.json()
    assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")


async def test_a_disabled_user_gets_the_same_401(harness: Harness) -> None:
    user_id = await harness.create_user("alice")
    await set_user(harness, user_id, disabled=True)
    harness.bastion.users.invalidate(user_id)
    disabled = await harness.client.post(
        "/auth/session", json={"username": "alice", "password": STRONG_PASSWORD}
    )
    unknown = await harness.client.post(
        "/auth/session", json={"username": "nobody-here", "password": STRONG_PASSWORD}
    )
    assert_problem(disabled, 401)
    assert disabled.headers.get_list("set-cookie") == []
    assert disabled.json() == unknown.json()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": "alice"}, 422),
        ({"password": STRONG_PASSWORD}, 422),
        ({"username": "alice", "password": STRONG_PASSWORD, "remember": True}, 422),
        ({"username": ["alice"], "password": STRONG_PASSWORD}, 422),
    ],
    ids=["no-password", "no-username", "unknown-field", "list"],
)
async def test_malformed_login_bodies_are_problems(
    harness: Harness, body: dict[str, Any], status: int
) -> None:
    await harness.create_user("alice")
    response = await harness.client.post("/auth/session", json=body)
    assert_problem(response, status)
    assert response.headers.get_list("set-cookie") == []
    assert STRONG_PASSWORD not in response.text


async def test_a_form_login_is_415(harness: Harness) -> None:
    await harness.create_user("alice")
    response = await harness.client.post(
        "/auth/session", data={"username": "alice", "password": STRONG_PASSWORD}
    )
    assert_problem(response, 415)


async def test_the_login_limit_applies(start_app: StartApp) -> None:
    h = await start_app(ratelimit_login="2/minute")
    await h.create_user("alice")
    credentials = {"username": "alice", "password": STRONG_PASSWORD}
    assert (await h.client.post("/auth/session", json=credentials)).status_code == 200
    wrong = {"username": "alice", "password": "not the password at all"}
    assert (await h.client.post("/auth/session", json=wrong)).status_code == 401
    limited = await h.client.post("/auth/session", json=credentials)
    assert limited.status_code == 429
    assert limited.headers["content-type"] == PROBLEM_JSON
    assert (
        limited.json()["type"] == "https://iana.org/assignments/http-problem-types#quota-exceeded"
    )
    assert int(limited.headers["retry-after"]) >= 1
    assert '"login"' in limited.headers["ratelimit-policy"]
    assert limited.headers.get_list("set-cookie") == []


async def test_five_failures_lock_the_account_for_sessions_and_tokens(harness: Harness) -> None:
    await harness.create_user("alice")
    wrong = {"username": "alice", "password": "not the password at all"}
    statuses = [
        (await harness.client.post("/auth/session", json=wrong)).status_code for _ in range(5)
    ]
    assert statuses == [401] * 5

    locked = await harness.client.post(
        "/auth/session", json={"username": "alice", "password": STRONG_PASSWORD}
    )
    assert locked.status_code == 429
    assert locked.headers["content-type"] == PROBLEM_JSON
    assert int(locked.headers["retry-after"]) >= 1
    assert locked.headers.get_list("set-cookie") == []
    token = await harness.client.post(
        "/auth/token",
        data={"grant_type": "password", "username": "alice", "password": STRONG_PASSWORD},
    )
    assert token.status_code == 429

    for _ in range(5):
        await harness.client.post(
            "/auth/session", json={"username": "nobody-here", "password": "x" * 12}
        )
    unknown = await harness.client.post(
        "/auth/session", json={"username": "nobody-here", "password": "x" * 12}
    )
    assert unknown.status_code == 429
    assert unknown.content == locked.content


# ------------------------------------------------------------------------ using a session


async def test_me_says_session(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    me = await harness.client.get("/auth/me", headers=login.cookies)
    assert me.status_code == 200
    body = me.json()
    assert body["auth"] == "session"
    assert body["username"] == "alice"
    assert set(body["scopes"]) == USER_SCOPES
    assert "no-store" in me.headers["cache-control"]


async def test_safe_methods_need_no_csrf_token(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    assert (await harness.client.get("/items", headers=login.cookies)).status_code == 200
    secure = await harness.client.get("/secure-data", headers=login.cookies)
    assert secure.status_code == 200
    assert secure.json()["user"] == "alice"
    assert (await harness.client.get("/auth/keys", headers=login.cookies)).status_code == 200


async def test_the_session_cookie_alone_is_enough_to_authenticate(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    only_session = {"Cookie": f"{login.names[0]}={login.token}"}
    assert (await harness.client.get("/items", headers=only_session)).status_code == 200


async def test_unsafe_methods_without_a_csrf_token_are_403(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    created = await harness.client.post("/items", json={"name": "pen"}, headers=login.unsafe)
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]

    post = await harness.client.post("/items", json={"name": "evil"}, headers=login.cookies)
    patch = await harness.client.patch(
        f"/items/{item_id}", json={"name": "evil"}, headers=login.cookies
    )
    delete = await harness.client.delete(f"/items/{item_id}", headers=login.cookies)

    for response in (post, patch, delete):
        assert_csrf_refused(response)
        assert login.csrf not in response.text
    assert await item_names(harness, login.cookies) == ["pen"]


@pytest.mark.parametrize(
    "wrong",
    ["", "x", "0" * 64, "upper", "truncated", "extended", "session-token"],
)
async def test_a_wrong_csrf_token_is_403(harness: Harness, wrong: str) -> None:
    login = await new_user_session(harness, "alice")
    value = {
        "upper": login.csrf.upper(),
        "truncated": login.csrf[:-1],
        "extended": login.csrf + "0",
        "session-token": login.token,
    }.get(wrong, wrong)
    assert value != login.csrf
    response = await harness.client.post(
        "/items", json={"name": "evil"}, headers={**login.cookies, "X-CSRF-Token": value}
    )
    assert_csrf_refused(response)
    assert await item_names(harness, login.cookies) == []


async def test_a_csrf_token_of_another_session_is_403(harness: Harness) -> None:
    await harness.create_user("alice")
    first = await session_login(harness, "alice")
    second = await session_login(harness, "alice")
    mallory = await new_user_session(harness, "mallory")
    assert first.csrf != second.csrf

    for foreign in (second.csrf, mallory.csrf):
        response = await harness.client.post(
            "/items", json={"name": "evil"}, headers={**first.cookies, "X-CSRF-Token": foreign}
        )
        assert_csrf_refused(response)
    assert await item_names(harness, first.cookies) == []


async def test_the_right_csrf_token_lets_unsafe_methods_through(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    created = await harness.client.post("/items", json={"name": "pen"}, headers=login.unsafe)
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]
    patched = await harness.client.patch(
        f"/items/{item_id}", json={"name": "pencil"}, headers=login.unsafe
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "pencil"
    deleted = await harness.client.delete(f"/items/{item_id}", headers=login.unsafe)
    assert deleted.status_code == 204
    assert await item_names(harness, login.cookies) == []


async def test_a_session_can_manage_api_keys_with_its_csrf_token(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    refused = await harness.client.post("/auth/keys", json={"name": "ci"}, headers=login.cookies)
    assert_csrf_refused(refused)
    created = await harness.client.post("/auth/keys", json={"name": "ci"}, headers=login.unsafe)
    assert created.status_code == 201, created.text
    assert set(created.json()["scopes"]) == USER_SCOPES


# ------------------------------------------------------------------------------- ending


async def test_deleting_the_session_ends_it_and_clears_the_cookies(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")

    response = await harness.client.delete("/auth/session", headers=login.unsafe)

    assert response.status_code == 204, response.text
    cleared = {c.name: c for c in set_cookies(response)}
    for name in login.names:
        assert name in cleared, cleared
        assert cleared[name].attributes.get("max-age") == "0"
        assert cleared[name].value == ""
    # The old cookie, re-sent by hand, is dead server-side.
    assert_problem(await harness.client.get("/auth/me", headers=login.cookies), 401)
    assert_problem(
        await harness.client.post("/items", json={"name": "x"}, headers=login.unsafe), 401
    )


async def test_deleting_the_session_needs_the_csrf_token(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    response = await harness.client.delete("/auth/session", headers=login.cookies)
    assert_csrf_refused(response)
    assert (await harness.client.get("/auth/me", headers=login.cookies)).status_code == 200


async def test_logout_with_a_session_ends_it(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    refused = await harness.client.post("/auth/logout", headers=login.cookies)
    assert_csrf_refused(refused)
    assert (await harness.client.get("/auth/me", headers=login.cookies)).status_code == 200

    response = await harness.client.post("/auth/logout", headers=login.unsafe)

    assert response.status_code == 204, response.text
    cleared = {c.name: c for c in set_cookies(response)}
    for name in login.names:
        assert cleared[name].attributes.get("max-age") == "0", cleared
    assert_problem(await harness.client.get("/auth/me", headers=login.cookies), 401)


async def test_ending_one_session_leaves_the_others(harness: Harness) -> None:
    await harness.create_user("alice")
    first = await session_login(harness, "alice")
    second = await session_login(harness, "alice")
    assert first.token != second.token
    assert (await harness.client.delete("/auth/session", headers=first.unsafe)).status_code == 204
    assert (await harness.client.get("/auth/me", headers=second.cookies)).status_code == 200


async def test_a_password_change_ends_every_session_of_the_user(harness: Harness) -> None:
    await harness.create_user("alice")
    caller = await session_login(harness, "alice")
    other_device = await session_login(harness, "alice")
    tokens = await harness.login("alice")
    bob = await new_user_session(harness, "bob")

    changed = await harness.client.post(
        "/auth/password",
        json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        headers=caller.unsafe,
    )

    assert changed.status_code == 204, changed.text
    for login in (caller, other_device):
        assert_problem(await harness.client.get("/auth/me", headers=login.cookies), 401)
    assert_problem(
        await harness.client.get("/auth/me", headers=bearer(tokens["access_token"])), 401
    )
    assert (await harness.client.get("/auth/me", headers=bob.cookies)).status_code == 200
    fresh = await session_login(harness, "alice", NEW_PASSWORD)
    assert (await harness.client.get("/auth/me", headers=fresh.cookies)).status_code == 200


async def test_a_password_change_by_session_needs_the_csrf_token(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    response = await harness.client.post(
        "/auth/password",
        json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        headers=login.cookies,
    )
    assert_csrf_refused(response)
    assert (await harness.client.get("/auth/me", headers=login.cookies)).status_code == 200


async def test_a_disabled_users_session_is_401(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    me = await harness.client.get("/auth/me", headers=login.cookies)
    await set_user(harness, me.json()["id"], disabled=True)
    harness.bastion.users.invalidate(me.json()["id"])
    assert_problem(await harness.client.get("/auth/me", headers=login.cookies), 401)


# ---------------------------------------------------------------------------- lifetimes


async def test_an_idle_session_expires(start_app: StartApp) -> None:
    h = await start_app(session_idle_seconds=60, session_absolute_seconds=3600)
    await h.create_user("alice")
    login = await session_login(h, "alice")
    move_session_clock(h, 50)
    assert (await h.client.get("/auth/me", headers=login.cookies)).status_code == 200
    move_session_clock(h, 50 + 61)
    assert_problem(await h.client.get("/auth/me", headers=login.cookies), 401)


async def test_the_default_idle_lifetime_ends_a_forgotten_session(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    move_session_clock(harness, harness.bastion.settings.session_idle_seconds + 1)
    assert_problem(await harness.client.get("/auth/me", headers=login.cookies), 401)


@pytest.mark.parametrize("idle", [60, 120])
async def test_a_session_in_use_outlives_its_idle_time(start_app: StartApp, idle: int) -> None:
    """Idle means unused: a session used every two thirds of its idle time stays alive, also
    at the smallest idle lifetime the settings allow."""
    h = await start_app(session_idle_seconds=idle, session_absolute_seconds=3600)
    await h.create_user("alice")
    login = await session_login(h, "alice")
    step = idle * 2 // 3
    for offset in range(step, 4 * idle, step):
        move_session_clock(h, offset)
        response = await h.client.get("/auth/me", headers=login.cookies)
        assert response.status_code == 200, (idle, offset)


async def test_the_absolute_lifetime_ends_even_a_session_in_use(start_app: StartApp) -> None:
    h = await start_app(session_idle_seconds=120, session_absolute_seconds=300)
    await h.create_user("alice")
    login = await session_login(h, "alice")
    for offset in (100, 200, 290):
        move_session_clock(h, offset)
        assert (await h.client.get("/auth/me", headers=login.cookies)).status_code == 200
    move_session_clock(h, 302)
    assert_problem(await h.client.get("/auth/me", headers=login.cookies), 401)


async def test_the_cookies_live_as_long_as_the_session(start_app: StartApp) -> None:
    h = await start_app(session_absolute_seconds=600)
    await h.create_user("alice")
    login = await session_login(h, "alice")
    for cookie in set_cookies(login.response):
        assert cookie.attributes.get("max-age") == "600", cookie


# ---------------------------------------------------------------------- garbage cookies


GARBAGE_COOKIES = {
    "random": "bastion_session=Zm9yZ2VkLXNlc3Npb24tdmFsdWUtMTIzNDU2Nzg5MGFiY2RlZg",
    "ten-kib": "bastion_session=" + "A" * 10 * 1024,
    "quoted": 'bastion_session="abc\\"def"',
    "semicolons": "bastion_session=a;b;c; ;;=;",
    "percent-utf8": "bastion_session=%C3%A9%E2%82%AC",
    "percent-invalid": "bastion_session=%FF%FE%00%",
    "empty": "bastion_session=",
    "name-only": "bastion_session",
    "twice": "bastion_session=one; bastion_session=two",
    "host-prefix": "__Host-bastion_session=" + "B" * 43,
    "csrf-only": "bastion_csrf=" + "0" * 64,
    "equals": "bastion_session==== ; bastion_csrf===",
    "spaces": "bastion_session=  a b c  ",
    "comma": "bastion_session=a,b, c",
}


@pytest.mark.parametrize("cookie", list(GARBAGE_COOKIES.values()), ids=list(GARBAGE_COOKIES))
async def test_forged_or_garbage_cookies_are_401_never_500(harness: Harness, cookie: str) -> None:
    await harness.create_user("alice")
    me = await harness.client.get("/auth/me", headers={"Cookie": cookie})
    assert_problem(me, 401)
    post = await harness.client.post(
        "/items", json={"name": "x"}, headers={"Cookie": cookie, "X-CSRF-Token": "0" * 64}
    )
    assert_problem(post, 401)
    end = await harness.client.delete("/auth/session", headers={"Cookie": cookie})
    assert end.status_code in (204, 401), end.text


async def test_non_ascii_cookie_bytes_are_401_never_500(harness: Harness) -> None:
    for raw in (b"bastion_session=\xc3\xa9\xe2\x82\xac", b"bastion_session=\xff\xfe\x80"):
        response = await harness.client.get("/auth/me", headers=[(b"Cookie", raw)])
        assert_problem(response, 401)


async def test_a_session_cookie_is_not_accepted_as_a_bearer_token(harness: Harness) -> None:
    login = await new_user_session(harness, "alice")
    response = await harness.client.get("/auth/me", headers=bearer(login.token))
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


# ------------------------------------------------------------------ explicit credentials


async def test_a_bearer_token_wins_over_a_session_cookie_and_needs_no_csrf(
    harness: Harness,
) -> None:
    alice = await new_user_session(harness, "alice")
    bob = await harness.user_with_token("bob")

    response = await harness.client.post(
        "/items", json={"name": "bob's"}, headers={**alice.cookies, **bob}
    )

    assert response.status_code == 201, response.text
    assert await item_names(harness, bob) == ["bob's"]
    assert await item_names(harness, alice.cookies) == []
    me = await harness.client.get("/auth/me", headers={**alice.cookies, **bob})
    assert me.json()["auth"] == "bearer"
    assert me.json()["username"] == "bob"


async def test_production_behind_a_trusted_proxy_uses_the_host_prefix(start_app: StartApp) -> None:
    h = await start_app(**PRODUCTION, trusted_proxies=["127.0.0.1/32"])
    await h.create_user("alice")
    response = await h.client.post(
        "/auth/session",
        json={"username": "alice", "password": STRONG_PASSWORD},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"},
    )
    assert response.status_code == 200, response.text
    assert_host_cookies(response)
