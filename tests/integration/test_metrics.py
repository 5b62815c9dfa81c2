"""``GET /metrics`` (SPEC §4.6, §6): Prometheus text for credentials holding ``metrics:read``, and
counters that move by exactly what happened."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
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


async def test_unauthorized_floods_are_counted_though_rows_are_throttled(
    harness: Harness,
) -> None:
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
    assert 1 <= len(rows.json()["items"]) < 10
