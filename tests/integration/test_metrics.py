"""``GET /metrics`` (SPEC §4.6, §6): Prometheus text for credentials holding ``metrics:read``, and
counters that move by exactly what happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import STRONG_PASSWORD, Harness, make_settings, open_harness
from tests.integration.helpers import assert_no_credentials_challenge, assert_problem, bearer

WRONG_PASSWORD = "not the password at all, sorry"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient, headers: dict[str, str]) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@asynccontextmanager
async def other_client(harness: Harness, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client connecting from another address (its own per-IP bucket)."""
    transport = httpx.ASGITransport(app=harness.app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_metrics_need_credentials(harness: Harness) -> None:
    response = await harness.client.get("/metrics")
    assert_problem(response, 401)
    assert_no_credentials_challenge(response)


async def test_metrics_need_the_metrics_read_scope(harness: Harness) -> None:
    user = await harness.user_with_token("bob")
    response = await harness.client.get("/metrics", headers=user)
    assert_problem(response, 403)
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert "metrics:read" in challenge
    assert "bastion_" not in response.text


async def test_an_admin_reads_prometheus_text(harness: Harness) -> None:
    admin = await harness.user_with_token("root", admin=True)
    response = await harness.client.get("/metrics", headers=admin)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "no-store" in response.headers["cache-control"]
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert {
        "bastion_requests",
        "bastion_security_events",
        "bastion_rate_limited",
        "bastion_request_duration_seconds",
    } <= families


async def test_a_scraper_may_use_an_api_key_narrowed_to_metrics_read(harness: Harness) -> None:
    admin = await harness.user_with_token("root", admin=True)
    issued = await harness.client.post(
        "/auth/keys", json={"name": "prometheus", "scopes": ["metrics:read"]}, headers=admin
    )
    assert issued.status_code == 201, issued.text
    key = {"X-API-Key": issued.json()["key"]}
    assert (await harness.client.get("/metrics", headers=key)).status_code == 200
    # The same key can do nothing else (see test_admin for the admin routes).
    assert_problem(await harness.client.get("/items", headers=key), 403)
    assert_problem(await harness.client.post("/auth/keys", json={"name": "x"}, headers=key), 403)


async def test_a_user_granted_metrics_read_by_role_may_scrape(
    database_url: str, tmp_path: Path
) -> None:
    roles = {
        "user": ["items:read", "items:write", "keys:manage"],
        "admin": ["*"],
        "monitor": ["metrics:read"],
    }
    async with open_harness(make_settings(database_url, tmp_path, roles=roles)) as harness:
        await harness.bastion.accounts.create_user("grafana", STRONG_PASSWORD, ["monitor"])
        tokens = await harness.login("grafana")
        headers = bearer(tokens["access_token"])
        assert (await harness.client.get("/metrics", headers=headers)).status_code == 200
        assert_problem(await harness.client.get("/admin/users", headers=headers), 403)


async def test_request_counter_counts_each_request_by_route_template_and_status(
    harness: Harness,
) -> None:
    admin = await harness.user_with_token("root", admin=True)
    before = await scrape(harness.client, admin)
    for _ in range(3):
        assert (await harness.client.get("/public")).status_code == 200
    for item_id in (1, 2):
        response = await harness.client.get(f"/items/{item_id}", headers=admin)
        assert response.status_code == 404
    assert (await harness.client.get("/items")).status_code == 401
    after = await scrape(harness.client, admin)

    def moved(**labels: str) -> float:
        name = "bastion_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved(method="GET", route="/public", status="200") == 3
    assert moved(method="GET", route="/items/{item_id}", status="404") == 2
    assert moved(method="GET", route="/items", status="401") == 1
    # The first scrape itself was counted by the time of the second.
    assert moved(method="GET", route="/metrics", status="200") == 1
    # Raw paths never become labels.
    labels = {dict(key[1]).get("route") for key in after if key[0] == "bastion_requests_total"}
    assert "/items/1" not in labels
    assert "/items/2" not in labels


async def test_failed_logins_are_counted_exactly(harness: Harness) -> None:
    admin = await harness.user_with_token("root", admin=True)
    await harness.create_user("bob")
    before = await scrape(harness.client, admin)
    for _ in range(3):
        response = await harness.client.post(
            "/auth/token",
            data={"grant_type": "password", "username": "bob", "password": WRONG_PASSWORD},
        )
        assert response.status_code == 400
    unknown = await harness.client.post(
        "/auth/session", json={"username": "nobody", "password": WRONG_PASSWORD}
    )
    assert_problem(unknown, 401)
    await harness.login("bob")
    after = await scrape(harness.client, admin)

    def moved(type: str, outcome: str) -> float:
        name = "bastion_security_events_total"
        labels = {"type": type, "outcome": outcome}
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("login_failed", "failure") == 4
    assert moved("login_succeeded", "success") == 1
    assert moved("user_created", "success") == 0


async def test_rate_limited_requests_are_counted_exactly(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        database_url, tmp_path, ratelimit_ip="4/minute", ratelimit_login="1000/minute"
    )
    async with open_harness(settings) as harness:
        await harness.create_user("root", admin=True)
        async with other_client(harness, "10.9.8.7") as monitor:
            response = await monitor.post(
                "/auth/token",
                data={"grant_type": "password", "username": "root", "password": STRONG_PASSWORD},
            )
            admin = bearer(response.json()["access_token"])
            before = await scrape(monitor, admin)
            statuses = [(await harness.client.get("/public")).status_code for _ in range(7)]
            assert statuses == [200] * 4 + [429] * 3
            after = await scrape(monitor, admin)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("bastion_rate_limited_total", policy="ip") == 3
    assert moved("bastion_security_events_total", type="rate_limited", outcome="denied") == 3
    assert moved("bastion_requests_total", method="GET", route="/public", status="200") == 4


async def test_login_limit_refusals_are_counted_as_rate_limited(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, ratelimit_login="2/minute")
    async with open_harness(settings) as harness:
        await harness.create_user("root", admin=True)
        async with other_client(harness, "10.9.8.7") as monitor:
            response = await monitor.post(
                "/auth/token",
                data={"grant_type": "password", "username": "root", "password": STRONG_PASSWORD},
            )
            admin = bearer(response.json()["access_token"])
            before = await scrape(monitor, admin)
            form = {"grant_type": "password", "username": "bob", "password": WRONG_PASSWORD}
            statuses = [
                (await harness.client.post("/auth/token", data=form)).status_code for _ in range(5)
            ]
            assert statuses == [400, 400, 429, 429, 429]
            after = await scrape(monitor, admin)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("bastion_security_events_total", type="rate_limited", outcome="denied") == 3
    assert moved("bastion_rate_limited_total", policy="login") == 3


async def test_every_unauthorized_request_is_counted_and_stored(harness: Harness) -> None:
    """SPEC §6: each 401 is a row as well as a count; only 429s are stored throttled."""
    admin = await harness.user_with_token("root", admin=True)
    before = await scrape(harness.client, admin)
    for _ in range(10):
        assert (await harness.client.get("/items", headers=bearer("not-a-token"))).status_code == (
            401
        )
    after = await scrape(harness.client, admin)
    name = "bastion_security_events_total"
    labels = {"type": "unauthorized", "outcome": "denied"}
    assert value(after, name, **labels) - value(before, name, **labels) == 10
    rows = await harness.client.get("/admin/audit", params={"type": "unauthorized"}, headers=admin)
    assert len(rows.json()["items"]) == 10


# ----------------------------------------------------------------------------- authentications


async def test_password_grant_and_session_logins_are_counted_as_authentications(
    harness: Harness,
) -> None:
    """``bastion_authentications`` counts logins as well as credentials checked on routes: the
    password grant under ``password``, ``POST /auth/session`` under ``session`` (SPEC §6)."""
    admin = await harness.user_with_token("root", admin=True)
    await harness.create_user("bob")
    before = await scrape(harness.client, admin)
    wrong = {"grant_type": "password", "username": "bob", "password": WRONG_PASSWORD}
    for _ in range(2):
        assert (await harness.client.post("/auth/token", data=wrong)).status_code == 400
    await harness.login("bob")
    for password in (WRONG_PASSWORD, STRONG_PASSWORD, STRONG_PASSWORD):
        await harness.client.post("/auth/session", json={"username": "bob", "password": password})
    harness.client.cookies.clear()
    after = await scrape(harness.client, admin)

    def moved(scheme: str, outcome: str) -> float:
        name = "bastion_authentications_total"
        labels = {"scheme": scheme, "outcome": outcome}
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("password", "failure") == 2
    assert moved("password", "success") == 1
    assert moved("session", "failure") == 1
    assert moved("session", "success") == 2
    assert moved("none", "failure") == 0


# ----------------------------------------------------------------------------- active sessions


def active_sessions(samples: Samples) -> float:
    return value(samples, "bastion_active_sessions")


async def open_session(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Log in with a cookie session; the headers a browser would then send."""
    response = await client.post(
        "/auth/session", json={"username": username, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 200, response.text
    client.cookies.clear()
    token = response.cookies["bastion_session"]
    return {"Cookie": f"bastion_session={token}", "X-CSRF-Token": response.json()["csrf_token"]}


async def test_the_active_sessions_gauge_follows_every_way_a_session_ends(
    harness: Harness,
) -> None:
    """Sessions end by logout, by password change and by an admin revoke; each must lower
    the gauge, not only the logout that this worker records as session_ended."""
    admin = await harness.user_with_token("root", admin=True)
    bob_id = await harness.create_user("bob")
    await harness.create_user("carol")
    assert active_sessions(await scrape(harness.client, admin)) == 0
    bob = [await open_session(harness.client, "bob") for _ in range(2)]
    carol = [await open_session(harness.client, "carol") for _ in range(3)]
    assert active_sessions(await scrape(harness.client, admin)) == 5

    logout = await harness.client.delete("/auth/session", headers=carol[0])
    assert logout.status_code == 204
    assert active_sessions(await scrape(harness.client, admin)) == 4

    changed = await harness.client.post(
        "/auth/password",
        json={"current_password": STRONG_PASSWORD, "new_password": "a new and long passphrase"},
        headers=carol[1],
    )
    assert changed.status_code == 204, changed.text
    assert active_sessions(await scrape(harness.client, admin)) == 2

    revoked = await harness.client.post(f"/admin/users/{bob_id}/revoke", headers=admin)
    assert revoked.status_code == 204
    assert active_sessions(await scrape(harness.client, admin)) == 0
    assert (await harness.client.get("/auth/me", headers=bob[0])).status_code == 401


async def test_disabling_a_user_lowers_the_active_sessions_gauge(harness: Harness) -> None:
    admin = await harness.user_with_token("root", admin=True)
    bob_id = await harness.create_user("bob")
    await open_session(harness.client, "bob")
    assert active_sessions(await scrape(harness.client, admin)) == 1
    disabled = await harness.client.patch(
        f"/admin/users/{bob_id}", json={"disabled": True}, headers=admin
    )
    assert disabled.status_code == 200, disabled.text
    assert active_sessions(await scrape(harness.client, admin)) == 0


async def test_the_active_sessions_gauge_starts_from_the_database(
    database_url: str, tmp_path: Path
) -> None:
    """A restarted worker must not report 0 while sessions opened before it are live."""
    settings = make_settings(database_url, tmp_path)
    async with open_harness(settings) as first:
        await first.create_user("root", admin=True)
        await first.create_user("bob")
        for _ in range(3):
            await open_session(first.client, "bob")
    async with open_harness(settings) as restarted:
        tokens = await restarted.login("root")
        samples = await scrape(restarted.client, bearer(tokens["access_token"]))
        assert active_sessions(samples) == 3


async def test_expired_and_idle_sessions_leave_the_gauge_at_the_next_count(
    harness: Harness,
) -> None:
    """Expiry writes nothing; the periodic count (the lifespan's background task) sees it."""
    admin = await harness.user_with_token("root", admin=True)
    await harness.create_user("bob")
    sessions = harness.bastion.sessions
    now = [time.time()]
    sessions._clock = lambda: now[0]
    await open_session(harness.client, "bob")
    now[0] += 10
    await open_session(harness.client, "bob")
    assert active_sessions(await scrape(harness.client, admin)) == 2

    now[0] += harness.bastion.settings.session_idle_seconds - 5  # the first is idle too long
    await sessions.count_live()
    assert active_sessions(await scrape(harness.client, admin)) == 1
    now[0] += sessions.absolute_seconds  # and the second is past its absolute lifetime
    await sessions.count_live()
    assert active_sessions(await scrape(harness.client, admin)) == 0


async def test_the_periodic_task_counts_live_sessions(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = asyncio.Event()

    async def count_live() -> None:
        counted.set()

    monkeypatch.setattr(harness.bastion.sessions, "count_live", count_live)
    task = asyncio.create_task(harness.bastion._flush_periodically(every=0))
    try:
        await asyncio.wait_for(counted.wait(), timeout=5)
    finally:
        task.cancel()
