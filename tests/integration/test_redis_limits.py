"""Limits shared through a real Redis (SPEC §5, §7), and what happens when Redis is gone."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import STRONG_PASSWORD, make_settings, open_harness


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_two_apps_on_one_redis_share_one_ip_limit(
    database_url: str, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Two servers (think: two workers or nodes) count into one bucket."""
    prefix = redis_prefix
    settings = make_settings(
        database_url, tmp_path, redis_url=redis_url, redis_prefix=prefix, ratelimit_ip="5/minute"
    )
    async with open_harness(settings) as first, open_harness(settings) as second:
        statuses = []
        for index in range(8):
            harness = first if index % 2 == 0 else second
            statuses.append((await harness.client.get("/public")).status_code)
        assert statuses.count(200) == 5
        assert statuses.count(429) == 3


async def test_login_fails_closed_when_redis_is_down(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        redis_url=f"redis://127.0.0.1:{closed_port()}/0",
        redis_timeout=0.5,
    )
    async with open_harness(settings) as h:
        await h.create_user("alice")
        form = {"grant_type": "password", "username": "alice", "password": STRONG_PASSWORD}
        login = await h.client.post("/auth/token", data=form)
        assert login.status_code == 503
        assert login.headers["content-type"] == "application/problem+json"
        assert int(login.headers["retry-after"]) >= 1
        # Other routes follow the default "open" and keep answering.
        assert (await h.client.get("/public")).status_code == 200


async def test_bearer_authentication_keeps_working_when_redis_is_down(
    database_url: str, tmp_path: Path
) -> None:
    """SPEC §7: a Redis outage degrades limits, never authentication."""
    settings = make_settings(
        database_url,
        tmp_path,
        redis_url=f"redis://127.0.0.1:{closed_port()}/0",
        redis_timeout=0.5,
    )
    async with open_harness(settings) as h:
        await h.create_user("alice")
        pair = await h.bastion.tokens.password_grant("alice", STRONG_PASSWORD, None)
        headers = {"Authorization": f"Bearer {pair.access_token}"}
        response = await h.client.get("/secure-data", headers=headers)
        assert response.status_code == 200


async def test_closed_mode_refuses_every_route_when_redis_is_down(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        redis_url=f"redis://127.0.0.1:{closed_port()}/0",
        redis_timeout=0.5,
        ratelimit_on_error="closed",
    )
    async with open_harness(settings) as h:
        response = await h.client.get("/public")
        assert response.status_code == 503
        assert "retry-after" in response.headers
        assert (await h.client.get("/health")).status_code == 200
