"""An attacker on IPv6 holds a whole /64: rotating through its addresses must not buy it a new
per-IP or login bucket with every request (SPEC §5), while the logs keep the real address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bastion.storage.models import AuditEventRow
from tests.conftest import Harness, make_settings, open_harness

ATTACKER_NET = "2001:db8:bad:1"
LOGIN = {"grant_type": "password", "username": "nobody", "password": "not-the-password"}


async def from_address(
    h: Harness, address: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    transport = httpx.ASGITransport(app=h.app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, path, **kwargs)


async def rotating(h: Harness, count: int, method: str, path: str, **kwargs: Any) -> list[int]:
    """The statuses of ``count`` requests, each from the next address of the attacker's /64."""
    return [
        (await from_address(h, f"{ATTACKER_NET}::{n:x}", method, path, **kwargs)).status_code
        for n in range(1, count + 1)
    ]


async def test_rotating_addresses_in_one_64_share_the_ip_limit(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, ratelimit_ip="3/minute")
    async with open_harness(settings) as h:
        assert await rotating(h, 5, "GET", "/public") == [200, 200, 200, 429, 429]
        # another subscriber's /64 is not punished for it
        neighbour = await from_address(h, "2001:db8:bad:2::1", "GET", "/public")
        assert neighbour.status_code == 200
        # the audit trail names the address that was refused, not its network
        ips = await rate_limited_rows(h)
        assert ips
        assert set(ips) <= {f"{ATTACKER_NET}::4", f"{ATTACKER_NET}::5"}


async def rate_limited_rows(h: Harness) -> list[str | None]:
    async with h.bastion.db.transaction() as session:
        rows = await session.scalars(
            select(AuditEventRow.ip).where(AuditEventRow.type == "rate_limited")
        )
        return list(rows.all())


async def test_rotating_addresses_cannot_flood_the_audit_trail(
    database_url: str, tmp_path: Path
) -> None:
    """A 429 is stored at most once a second per caller: a caller is its /64, or each refused
    request from a fresh address would be a database write, the flood the throttle prevents."""
    settings = make_settings(
        database_url, tmp_path, ratelimit_ip="1/minute", ratelimit_login="1/minute"
    )
    async with open_harness(settings) as h:
        statuses = await rotating(h, 30, "GET", "/public")
        assert statuses.count(429) == 29
        assert len(await rate_limited_rows(h)) <= 2  # 29 refusals in well under 2 s
    settings = make_settings(database_url, tmp_path / "login", ratelimit_login="1/minute")
    async with open_harness(settings) as h:
        statuses = await rotating(h, 30, "POST", "/auth/token", data=LOGIN)
        assert statuses.count(429) == 29
        assert len(await rate_limited_rows(h)) <= 2


async def test_rotating_addresses_do_not_escape_the_login_limit(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, ratelimit_login="2/minute")
    async with open_harness(settings) as h:
        statuses = await rotating(h, 4, "POST", "/auth/token", data=LOGIN)
    assert statuses == [400, 400, 429, 429]


async def test_an_ipv4_mapped_peer_shares_the_ipv4_clients_bucket(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, ratelimit_ip="2/minute")
    async with open_harness(settings) as h:
        first = await from_address(h, "198.51.100.9", "GET", "/public")
        second = await from_address(h, "::ffff:198.51.100.9", "GET", "/public")
        third = await from_address(h, "198.51.100.9", "GET", "/public")
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]


async def test_a_prefix_of_128_limits_each_address_alone(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        database_url, tmp_path, ratelimit_ip="1/minute", ratelimit_ipv6_prefix=128
    )
    async with open_harness(settings) as h:
        statuses = await rotating(h, 3, "GET", "/public")
    assert statuses == [200, 200, 200]
