"""Rate limits as a client sees them (SPEC §3, §5): RateLimit fields, 429 problem+json."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import STRONG_PASSWORD, Harness, make_settings, open_harness

QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
FIELD = re.compile(r'^"(?P<name>[a-z]+)";q=(?P<q>\d+);w=(?P<w>\d+)$')


async def test_every_route_but_the_probes_carries_ratelimit_fields(harness: Harness) -> None:
    public = await harness.client.get("/public")
    assert public.headers["ratelimit-policy"] == '"ip";q=100000;w=60'
    assert re.fullmatch(r'"ip";r=\d+;t=\d+', public.headers["ratelimit"])
    for probe in ("/health", "/ready"):
        assert "ratelimit" not in (await harness.client.get(probe)).headers


async def test_ip_limit_answers_429_problem_with_retry_after(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, ratelimit_ip="3/minute")
    async with open_harness(settings) as h:
        statuses = [(await h.client.get("/public")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = await h.client.get("/public")
        assert limited.headers["content-type"] == "application/problem+json"
        body = limited.json()
        assert body["type"] == QUOTA_EXCEEDED
        assert body["status"] == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers["ratelimit"].startswith('"ip";r=0;')
        assert limited.headers["x-content-type-options"] == "nosniff"
        assert "x-request-id" in limited.headers
        assert (await h.client.get("/health")).status_code == 200


async def test_ip_limit_counts_every_spelling_of_a_path_in_one_bucket(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, ratelimit_ip="4/minute")
    async with open_harness(settings) as h:
        for path in ("/items", "/items/", "/ITEMS", "/items%2F"):
            assert (await h.client.get(path)).status_code != 429, path
        assert (await h.client.get("/items")).status_code == 429


async def test_principal_limit_is_listed_beside_the_ip_limit(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, ratelimit_principal="2/minute")
    async with open_harness(settings) as h:
        headers = await h.user_with_token("alice")
        first = await h.client.get("/secure-data", headers=headers)
        policies = [FIELD.match(p.strip()) for p in first.headers["ratelimit-policy"].split(",")]
        assert [m["name"] for m in policies if m] == ["ip", "principal"]
        assert (await h.client.get("/secure-data", headers=headers)).status_code == 200
        limited = await h.client.get("/secure-data", headers=headers)
        assert limited.status_code == 429
        assert limited.json()["type"] == QUOTA_EXCEEDED
        other = await h.user_with_token("bob")
        assert (await h.client.get("/secure-data", headers=other)).status_code == 200


async def test_login_limit_is_problem_json_on_the_token_endpoint(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, ratelimit_login="2/minute")
    async with open_harness(settings) as h:
        await h.create_user("alice")
        form = {"grant_type": "password", "username": "alice", "password": STRONG_PASSWORD}
        assert (await h.client.post("/auth/token", data=form)).status_code == 200
        refresh = {"grant_type": "refresh_token", "refresh_token": "whatever"}
        assert (await h.client.post("/auth/token", data=refresh)).status_code == 400
        limited = await h.client.post("/auth/token", data=form)
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.json()["type"] == QUOTA_EXCEEDED
        assert "retry-after" in limited.headers
        assert '"login"' in limited.headers["ratelimit-policy"]


@pytest.mark.parametrize("spec", ["often", "10/fortnight", ""])
def test_a_malformed_limit_is_refused_at_start(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        make_settings("sqlite+aiosqlite:///:memory:", tmp_path, ratelimit_ip=spec)
