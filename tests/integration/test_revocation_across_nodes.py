"""One revocation across nodes (SPEC §4.2, §4.4, §4.7, §7): two apps on one database, as two
workers or nodes are. What one of them revokes, the other refuses within a second, with no
Redis at all: the database is the record and every node keeps up with it.

Each test revokes on ``a`` and then asks ``b`` until it refuses, measuring the delay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bastion.settings import BastionSettings
from tests.conftest import STRONG_PASSWORD, Harness, make_settings, open_harness
from tests.integration.helpers import bearer

PROMISE = 1.0
"""SPEC: refused on every worker and node within one second."""


@pytest.fixture
def shared(database_url: str, tmp_path: Path) -> BastionSettings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
async def nodes(shared: BastionSettings) -> AsyncIterator[tuple[Harness, Harness]]:
    async with open_harness(shared) as a, open_harness(shared) as b:
        yield a, b


async def refused_within(
    harness: Harness, path: str, headers: dict[str, str], method: str = "GET"
) -> float:
    """Seconds until ``path`` answers 401 on ``harness``; fails past the promise."""
    started = time.monotonic()
    while True:
        response = await harness.client.request(method, path, headers=headers)
        waited = time.monotonic() - started
        if response.status_code == 401:
            return waited
        assert response.status_code == 200, response.text
        assert waited < PROMISE, f"still accepted {waited:.2f} s after the revocation"
        await asyncio.sleep(0.02)


async def login(harness: Harness, username: str) -> dict[str, str]:
    tokens = await harness.login(username)
    return {"access": tokens["access_token"], "refresh": tokens["refresh_token"]}


async def test_an_access_token_revoked_on_one_node_dies_on_the_other(
    nodes: tuple[Harness, Harness],
) -> None:
    a, b = nodes
    await a.create_user("alice")
    tokens = await login(a, "alice")
    assert (await b.client.get("/auth/me", headers=bearer(tokens["access"]))).status_code == 200

    revoked = await a.client.post("/auth/revoke", data={"token": tokens["access"]})
    assert revoked.status_code == 200

    assert await refused_within(b, "/auth/me", bearer(tokens["access"])) < PROMISE


async def test_a_logout_on_one_node_kills_the_family_on_the_other(
    nodes: tuple[Harness, Harness],
) -> None:
    a, b = nodes
    await a.create_user("alice")
    first = await login(a, "alice")
    # a second access token of the same family, from a refresh on node b
    refreshed = await b.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh"]}
    )
    second = refreshed.json()["access_token"]
    assert (await b.client.get("/auth/me", headers=bearer(second))).status_code == 200

    assert (await a.client.post("/auth/logout", headers=bearer(second))).status_code == 204

    assert await refused_within(b, "/auth/me", bearer(second)) < PROMISE


async def test_refresh_reuse_detected_on_one_node_kills_the_family_on_the_other(
    nodes: tuple[Harness, Harness],
) -> None:
    a, b = nodes
    await a.create_user("alice")
    first = await login(a, "alice")
    rotated = await a.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh"]}
    )
    live = rotated.json()["access_token"]
    replay = await a.client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh"]}
    )
    assert replay.json()["error"] == "invalid_grant"

    assert await refused_within(b, "/auth/me", bearer(live)) < PROMISE


Change = Callable[[Harness, int, dict[str, str]], Awaitable[None]]


async def disable(admin_node: Harness, user_id: int, admin: dict[str, str]) -> None:
    response = await admin_node.client.patch(
        f"/admin/users/{user_id}", json={"disabled": True}, headers=admin
    )
    assert response.status_code == 200, response.text


async def drop_roles(admin_node: Harness, user_id: int, admin: dict[str, str]) -> None:
    response = await admin_node.client.patch(
        f"/admin/users/{user_id}", json={"roles": []}, headers=admin
    )
    assert response.status_code == 200, response.text


async def admin_revoke(admin_node: Harness, user_id: int, admin: dict[str, str]) -> None:
    response = await admin_node.client.post(f"/admin/users/{user_id}/revoke", headers=admin)
    assert response.status_code in (200, 204), response.text


@pytest.mark.parametrize("change", [disable, admin_revoke])
async def test_an_admin_change_on_one_node_ends_every_credential_on_the_other(
    nodes: tuple[Harness, Harness], change: Change
) -> None:
    a, b = nodes
    admin = await a.user_with_token("root", admin=True)
    user_id = await a.create_user("alice")
    token = bearer((await login(a, "alice"))["access"])
    issued = await b.client.post("/auth/keys", json={"name": "ci"}, headers=token)
    key = {"X-API-Key": issued.json()["key"]}
    session = await b.client.post(
        "/auth/session", json={"username": "alice", "password": STRONG_PASSWORD}
    )
    cookie = {"Cookie": "; ".join(f"{c.name}={c.value}" for c in b.client.cookies.jar)}
    b.client.cookies.clear()
    assert session.status_code == 200
    for headers in (token, key, cookie):
        assert (await b.client.get("/auth/me", headers=headers)).status_code == 200

    await change(a, user_id, admin)

    for headers in (token, key, cookie):
        assert await refused_within(b, "/auth/me", headers) < PROMISE


async def test_a_dropped_role_on_one_node_narrows_the_token_on_the_other(
    nodes: tuple[Harness, Harness],
) -> None:
    a, b = nodes
    admin = await a.user_with_token("root", admin=True)
    user_id = await a.create_user("alice")
    token = bearer((await login(a, "alice"))["access"])
    assert (await b.client.get("/items", headers=token)).status_code == 200

    await drop_roles(a, user_id, admin)

    started = time.monotonic()
    while (await b.client.get("/items", headers=token)).status_code == 200:
        assert time.monotonic() - started < PROMISE
        await asyncio.sleep(0.02)
    assert (await b.client.get("/items", headers=token)).status_code == 403


async def test_a_key_revoked_on_one_node_dies_on_the_other(
    nodes: tuple[Harness, Harness],
) -> None:
    a, b = nodes
    token = await a.user_with_token("alice")
    issued = (await a.client.post("/auth/keys", json={"name": "ci"}, headers=token)).json()
    key = {"X-API-Key": issued["key"]}
    assert (await b.client.get("/auth/me", headers=key)).status_code == 200

    assert (await a.client.delete(f"/auth/keys/{issued['id']}", headers=token)).status_code == 204

    assert await refused_within(b, "/auth/me", key) < PROMISE


async def test_a_session_ended_on_one_node_dies_on_the_other(
    nodes: tuple[Harness, Harness],
) -> None:
    a, b = nodes
    await a.create_user("alice")
    login_response = await a.client.post(
        "/auth/session", json={"username": "alice", "password": STRONG_PASSWORD}
    )
    csrf = login_response.json()["csrf_token"]
    cookie = {"Cookie": "; ".join(f"{c.name}={c.value}" for c in a.client.cookies.jar)}
    assert (await b.client.get("/auth/me", headers=cookie)).status_code == 200

    ended = await a.client.delete("/auth/session", headers={"X-CSRF-Token": csrf})
    assert ended.status_code == 204

    assert await refused_within(b, "/auth/me", cookie) < PROMISE
