"""Backend failures, survived (issue 7, SPEC §3 503, §7): Redis and PostgreSQL go away under a
running app and come back, and the app neither opens its doors, nor answers 500, nor needs a
restart. The backends are the tests' own: a private ``redis-server`` they kill and restart, and
a proxy in front of PostgreSQL they cut and restore."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import func, select

from bastion.storage.models import Item
from tests.conftest import STRONG_PASSWORD, Harness, _pg_execute, make_settings, open_harness
from tests.integration.backends import CuttableProxy, PrivateRedis
from tests.integration.helpers import assert_problem, bearer

LOGIN = {"grant_type": "password", "username": "alice", "password": STRONG_PASSWORD}


def degraded(harness: Harness, component: str, mode: str) -> float:
    value = harness.bastion.metrics.registry.get_sample_value(
        "bastion_degraded_decisions_total", {"component": component, "mode": mode}
    )
    return value or 0.0


async def eventually(check: Callable[[], Any], within: float = 10.0) -> None:
    """Wait until ``check()`` (sync or async) is true: recovery is the app's own doing."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert asyncio.get_running_loop().time() < deadline, "did not recover"
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------------------------ Redis


async def test_a_redis_outage_closes_login_keeps_the_rest_and_heals_itself(
    database_url: str, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        redis_url=private_redis.url,
        redis_prefix=f"t-{secrets.token_hex(4)}",
        redis_timeout=0.3,
    )
    async with open_harness(settings) as h:
        await h.create_user("alice")
        token = bearer((await h.client.post("/auth/token", data=LOGIN)).json()["access_token"])
        assert (await h.client.get("/ready")).json()["checks"] == {"database": "ok", "redis": "ok"}

        private_redis.stop()
        with structlog.testing.capture_logs() as logs:
            logins = [await h.client.post("/auth/token", data=LOGIN) for _ in range(3)]
            public = [await h.client.get("/public") for _ in range(3)]
            secured = await h.client.get("/secure-data", headers=token)
            ready = await h.client.get("/ready")

        for login in logins:  # fail closed: no login without its brute-force limit
            assert_problem(login, 503)
            assert int(login.headers["retry-after"]) >= 1
        assert [r.status_code for r in public] == [200, 200, 200]  # the default elsewhere: open
        assert secured.status_code == 200, "authentication never depends on Redis"
        body = assert_problem(ready, 503)
        assert body["checks"] == {"database": "ok", "redis": "down"}
        # each degraded decision is counted; the log says so once per period, not per request
        assert degraded(h, "ratelimit", "closed") >= 3
        assert degraded(h, "ratelimit", "open") >= 3
        warnings = [e for e in logs if e["event"] == "ratelimit_storage_failed"]
        assert len(warnings) == 1

        private_redis.start()

        async def login_works() -> bool:
            return (await h.client.post("/auth/token", data=LOGIN)).status_code == 200

        await eventually(login_works)
        assert (await h.client.get("/ready")).status_code == 200
        limited = await h.client.get("/public")
        assert "r=" in limited.headers["ratelimit"]


async def test_in_closed_mode_a_redis_outage_closes_every_limited_route(
    database_url: str, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        redis_url=private_redis.url,
        redis_prefix=f"t-{secrets.token_hex(4)}",
        redis_timeout=0.3,
        ratelimit_on_error="closed",
    )
    async with open_harness(settings) as h:
        assert (await h.client.get("/public")).status_code == 200
        private_redis.stop()
        refused = await h.client.get("/public")
        assert_problem(refused, 503)
        assert "retry-after" in refused.headers
        assert (await h.client.get("/health")).status_code == 200
        private_redis.start()

        async def open_again() -> bool:
            return (await h.client.get("/public")).status_code == 200

        await eventually(open_again)


# ------------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
async def test_a_database_outage_is_503_never_500_and_heals_without_a_restart(
    postgres_behind_proxy: tuple[str, CuttableProxy], tmp_path: Path
) -> None:
    url, proxy = postgres_behind_proxy
    await _pg_execute(url.replace(f"127.0.0.1:{proxy.port}", "127.0.0.1:5432"), TRUNCATE)
    settings = make_settings(url, tmp_path, database_timeout=1.0)
    async with open_harness(settings) as h:
        await h.create_user("alice")
        token = bearer((await h.client.post("/auth/token", data=LOGIN)).json()["access_token"])
        assert (
            await h.client.post("/items", json={"name": "before"}, headers=token)
        ).status_code == 201

        await proxy.cut()
        await asyncio.sleep(0.6)  # past the credential caches' staleness: reads must go out
        answers = [
            await h.client.get("/items", headers=token),
            await h.client.post("/items", json={"name": "during"}, headers=token),
            await h.client.post("/auth/token", data=LOGIN),
            await h.client.post(
                "/auth/register", json={"username": "bob", "password": STRONG_PASSWORD}
            ),
        ]
        ready = await h.client.get("/ready")

        for response in answers:
            assert response.status_code == 503, (response.request.url, response.text)
            assert "retry-after" in response.headers
            assert "Traceback" not in response.text
        assert assert_problem(ready, 503)["checks"] == {"database": "down"}
        assert (await h.client.get("/health")).status_code == 200

        await proxy.restore()

        async def ready_again() -> bool:
            return (await h.client.get("/ready")).status_code == 200

        await eventually(ready_again)
        items = await h.client.get("/items", headers=token)
        assert items.status_code == 200
        assert [i["name"] for i in items.json()["items"]] == ["before"]  # nothing half-written
        async with h.bastion.db.transaction() as session:
            assert await session.scalar(select(func.count()).select_from(Item)) == 1
        assert (await h.client.post("/auth/token", data=LOGIN)).status_code == 200


TRUNCATE = (
    "TRUNCATE users, refresh_families, refresh_tokens, revoked_access_tokens, items, "
    "login_failures, api_keys, sessions, audit_events RESTART IDENTITY CASCADE"
)
