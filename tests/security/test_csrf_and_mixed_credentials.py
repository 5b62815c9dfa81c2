"""Cross-site request forgery and mixed credentials (SPEC §2.3, §4.3).

A forged request from another site carries the victim's cookies but cannot read the CSRF token:
every unsafe request authenticated by the cookie must fail without it. A request that carries an
explicit credential is judged by that credential alone: a bearer token *and* an API key is a 400,
never resolved by guessing; a session cookie next to either is ignored (no CSRF needed, and no
rescue of a bad explicit credential by the cookie).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import STRONG_PASSWORD, Harness
from tests.integration.helpers import PROBLEM_JSON, assert_problem, bearer


@dataclass
class Victim:
    """A logged-in browser: its session and CSRF cookies, and the token its page's script read."""

    id: int
    token: str
    csrf: str

    @property
    def cookies(self) -> dict[str, str]:
        return {"Cookie": f"bastion_session={self.token}; bastion_csrf={self.csrf}"}

    @property
    def unsafe(self) -> dict[str, str]:
        return {**self.cookies, "X-CSRF-Token": self.csrf}


async def browser_login(h: Harness, username: str) -> Victim:
    user_id = await h.create_user(username)
    response = await h.client.post(
        "/auth/session", json={"username": username, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 200, response.text
    token = response.cookies["bastion_session"]
    h.client.cookies.clear()
    return Victim(user_id, token, response.json()["csrf_token"])


async def new_key(h: Harness, headers: dict[str, str], **fields: Any) -> str:
    response = await h.client.post("/auth/keys", json={"name": "ci", **fields}, headers=headers)
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


async def names(h: Harness, headers: dict[str, str]) -> list[str]:
    response = await h.client.get("/items", headers=headers)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]


def assert_csrf_refused(response: httpx.Response) -> None:
    body = assert_problem(response, 403)
    assert "csrf" in body["type"].lower()
    assert body["reason"] == "csrf_failed"


# ---------------------------------------------------------------------------- CSRF


async def test_a_cross_site_form_post_is_refused(harness: Harness) -> None:
    """What a hostile page can make a browser send: the cookies, a simple content type, a
    foreign Origin, and no custom header."""
    victim = await browser_login(harness, "alice")
    for content_type, body in (
        ("application/json", b'{"name": "planted"}'),
        ("text/plain", b'{"name": "planted"}'),
        ("application/x-www-form-urlencoded", b"name=planted"),
    ):
        response = await harness.client.post(
            "/items",
            content=body,
            headers={
                **victim.cookies,
                "Content-Type": content_type,
                "Origin": "https://evil.example",
                "Referer": "https://evil.example/attack.html",
            },
        )
        assert response.status_code in (403, 415), response.text
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert await names(harness, victim.cookies) == []


async def test_the_csrf_cookie_alone_is_not_a_csrf_token(harness: Harness) -> None:
    """Browsers send the CSRF cookie on their own: only the header proves a same-origin script."""
    victim = await browser_login(harness, "alice")
    response = await harness.client.post("/items", json={"name": "x"}, headers=victim.cookies)
    assert_csrf_refused(response)


async def test_a_csrf_token_in_the_body_or_query_is_not_enough(harness: Harness) -> None:
    victim = await browser_login(harness, "alice")
    in_query = await harness.client.post(
        "/items", params={"csrf_token": victim.csrf}, json={"name": "x"}, headers=victim.cookies
    )
    assert_csrf_refused(in_query)
    in_body = await harness.client.post(
        "/items", json={"name": "x", "csrf_token": victim.csrf}, headers=victim.cookies
    )
    assert in_body.status_code in (403, 422)
    assert await names(harness, victim.cookies) == []


async def test_the_attackers_own_csrf_token_does_not_work_on_the_victims_session(
    harness: Harness,
) -> None:
    victim = await browser_login(harness, "alice")
    attacker = await browser_login(harness, "mallory")
    response = await harness.client.post(
        "/items", json={"name": "x"}, headers={**victim.cookies, "X-CSRF-Token": attacker.csrf}
    )
    assert_csrf_refused(response)
    assert await names(harness, victim.cookies) == []


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"], ids=["post", "patch", "delete"])
async def test_every_unsafe_method_on_an_item_needs_the_token(
    harness: Harness, method: str
) -> None:
    victim = await browser_login(harness, "alice")
    created = await harness.client.post("/items", json={"name": "pen"}, headers=victim.unsafe)
    assert created.status_code == 201
    url = "/items" if method == "POST" else f"/items/{created.json()['id']}"
    json = None if method == "DELETE" else {"name": "changed"}
    response = await harness.client.request(method, url, json=json, headers=victim.cookies)
    assert_csrf_refused(response)
    assert await names(harness, victim.cookies) == ["pen"]


async def test_unsafe_auth_routes_need_the_token_too(harness: Harness) -> None:
    victim = await browser_login(harness, "alice")
    for method, url, json in (
        ("POST", "/auth/keys", {"name": "ci"}),
        ("POST", "/auth/logout", None),
        ("DELETE", "/auth/session", None),
        (
            "POST",
            "/auth/password",
            {"current_password": STRONG_PASSWORD, "new_password": "a brand new passphrase"},
        ),
    ):
        response = await harness.client.request(method, url, json=json, headers=victim.cookies)
        assert_csrf_refused(response)
    # Nothing happened: the session lives, no key exists, the password is unchanged.
    keys = await harness.client.get("/auth/keys", headers=victim.cookies)
    assert keys.status_code == 200
    assert keys.json()["items"] == []
    assert (await harness.client.get("/auth/me", headers=victim.cookies)).status_code == 200
    await harness.login("alice", STRONG_PASSWORD)


async def test_a_session_planted_before_login_is_not_adopted(harness: Harness) -> None:
    """Session fixation: a cookie the attacker set before the victim logs in stays worthless."""
    await harness.create_user("alice")
    planted = secrets.token_urlsafe(32)
    response = await harness.client.post(
        "/auth/session",
        json={"username": "alice", "password": STRONG_PASSWORD},
        headers={"Cookie": f"bastion_session={planted}"},
    )
    assert response.status_code == 200
    assert response.cookies["bastion_session"] != planted
    harness.client.cookies.clear()
    me = await harness.client.get("/auth/me", headers={"Cookie": f"bastion_session={planted}"})
    assert_problem(me, 401)


async def test_a_csrf_failure_never_reveals_the_right_token(harness: Harness) -> None:
    victim = await browser_login(harness, "alice")
    response = await harness.client.post(
        "/items", json={"name": "x"}, headers={**victim.cookies, "X-CSRF-Token": "guess"}
    )
    assert_csrf_refused(response)
    assert victim.csrf not in response.text
    assert victim.token not in response.text
    assert response.headers.get_list("set-cookie") == []


# ------------------------------------------------------------------ mixed credentials


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_bearer_token_and_an_api_key_together_are_400(
    harness: Harness, method: str
) -> None:
    headers = await harness.user_with_token("alice")
    key = await new_key(harness, headers)
    both = {**headers, "X-API-Key": key}

    for url in ("/items", "/auth/me", "/auth/keys", "/secure-data"):
        json = {"name": "x"} if method == "POST" else None
        if method == "POST" and url in ("/auth/me", "/secure-data"):
            continue
        response = await harness.client.request(method, url, json=json, headers=both)
        assert_problem(response, 400)
        assert key not in response.text
    assert await names(harness, headers) == []


async def test_a_bearer_and_a_key_of_different_users_are_400(harness: Harness) -> None:
    alice = await harness.user_with_token("alice")
    bob = await harness.user_with_token("bob")
    bob_key = await new_key(harness, bob)
    response = await harness.client.post(
        "/items", json={"name": "x"}, headers={**alice, "X-API-Key": bob_key}
    )
    assert_problem(response, 400)
    assert await names(harness, alice) == []
    assert await names(harness, bob) == []


@pytest.mark.parametrize(
    ("bearer_value", "key_value"),
    [("valid", "garbage"), ("garbage", "valid"), ("garbage", "garbage"), ("valid", "")],
    ids=["bad-key", "bad-bearer", "both-bad", "empty-key"],
)
async def test_a_bearer_and_a_key_are_400_whatever_their_validity(
    harness: Harness, bearer_value: str, key_value: str
) -> None:
    headers = await harness.user_with_token("alice")
    key = await new_key(harness, headers)
    token = headers["Authorization"] if bearer_value == "valid" else "Bearer not.a.jwt"
    api_key = {"valid": key, "garbage": "bst_garbage"}.get(key_value, key_value)
    response = await harness.client.get(
        "/items", headers={"Authorization": token, "X-API-Key": api_key}
    )
    assert_problem(response, 400)


async def test_a_key_wins_over_a_session_cookie_and_needs_no_csrf(harness: Harness) -> None:
    victim = await browser_login(harness, "alice")
    bob = await harness.user_with_token("bob")
    bob_key = await new_key(harness, bob)

    response = await harness.client.post(
        "/items", json={"name": "bob's"}, headers={**victim.cookies, "X-API-Key": bob_key}
    )

    assert response.status_code == 201, response.text
    assert await names(harness, bob) == ["bob's"]
    assert await names(harness, victim.cookies) == []
    me = await harness.client.get("/auth/me", headers={**victim.cookies, "X-API-Key": bob_key})
    assert me.json()["auth"] == "api_key"
    assert me.json()["username"] == "bob"


async def test_a_bearer_wins_over_a_session_cookie_and_needs_no_csrf(harness: Harness) -> None:
    victim = await browser_login(harness, "alice")
    bob = await harness.user_with_token("bob")

    response = await harness.client.post(
        "/items", json={"name": "bob's"}, headers={**victim.cookies, **bob}
    )

    assert response.status_code == 201, response.text
    assert await names(harness, bob) == ["bob's"]
    assert await names(harness, victim.cookies) == []


async def test_a_bad_bearer_is_not_rescued_by_a_session_cookie(harness: Harness) -> None:
    victim = await browser_login(harness, "alice")
    response = await harness.client.get(
        "/auth/me", headers={**victim.cookies, **bearer("not.a.valid-token")}
    )
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    post = await harness.client.post(
        "/items", json={"name": "x"}, headers={**victim.unsafe, **bearer("not.a.valid-token")}
    )
    assert_problem(post, 401)
    assert await names(harness, victim.cookies) == []


async def test_a_bad_key_is_not_rescued_by_a_session_cookie(harness: Harness) -> None:
    victim = await browser_login(harness, "alice")
    response = await harness.client.get(
        "/auth/me", headers={**victim.cookies, "X-API-Key": "bst_forged"}
    )
    assert_problem(response, 401)
    assert 'ApiKey realm="bastion"' in response.headers["www-authenticate"]
    post = await harness.client.post(
        "/items", json={"name": "x"}, headers={**victim.unsafe, "X-API-Key": "bst_forged"}
    )
    assert_problem(post, 401)
    assert await names(harness, victim.cookies) == []


async def test_a_revoked_key_is_not_rescued_by_a_session_cookie(harness: Harness) -> None:
    victim = await browser_login(harness, "alice")
    key = await new_key(harness, victim.unsafe)
    key_id = key.split("_")[1]
    deleted = await harness.client.delete(f"/auth/keys/{key_id}", headers=victim.unsafe)
    assert deleted.status_code == 204
    response = await harness.client.get("/items", headers={**victim.cookies, "X-API-Key": key})
    assert_problem(response, 401)


async def test_an_ignored_query_key_does_not_make_a_bearer_request_ambiguous(
    harness: Harness,
) -> None:
    headers = await harness.user_with_token("alice")
    key = await new_key(harness, headers)
    response = await harness.client.get("/items", params={"api_key": key}, headers=headers)
    assert response.status_code == 200
    alone = await harness.client.get("/items", params={"api_key": key})
    assert_problem(alone, 401)
