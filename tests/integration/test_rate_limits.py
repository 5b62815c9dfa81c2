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


# ------------------------------------------------------------- the edge's own answers


async def test_the_edges_own_answers_count_and_carry_the_fields(
    database_url: str, tmp_path: Path
) -> None:
    """A redirect, an announced oversized body and a CORS preflight are answered by the edge
    without the app: they are still counted per IP (a flood of them is limited too) and still
    say so in RateLimit fields (SPEC §3); an unknown Host is refused before anything."""
    settings = make_settings(
        database_url,
        tmp_path,
        ratelimit_ip="4/minute",
        cors_origins=["https://app.example"],
        max_body_bytes=2048,
    )
    async with open_harness(settings) as h:
        unknown_host = await h.client.get("/public", headers={"Host": "evil.example"})
        oversized = await h.client.post(
            "/items", content=b"x" * 4096, headers={"Content-Type": "application/json"}
        )
        preflight = await h.client.options(
            "/items",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        answers = [oversized, preflight]
        assert [r.status_code for r in answers] == [413, 204]
        assert "ratelimit" not in unknown_host.headers
        for response in answers:
            assert response.headers["ratelimit-policy"] == '"ip";q=4;w=60'
        assert oversized.headers["ratelimit"].startswith('"ip";r=3;')
        assert preflight.headers["ratelimit"].startswith('"ip";r=2;')
        after = [(await h.client.get("/public")).status_code for _ in range(3)]
        assert after == [200, 200, 429]


async def test_an_oversized_body_from_a_granted_origin_is_readable_by_its_page(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url, tmp_path, cors_origins=["https://app.example"], max_body_bytes=2048
    )
    async with open_harness(settings) as h:
        response = await h.client.post(
            "/items",
            content=b"x" * 4096,
            headers={"Content-Type": "application/json", "Origin": "https://app.example"},
        )
    assert response.status_code == 413
    assert response.headers["access-control-allow-origin"] == "https://app.example"


async def test_a_spoofed_forwarding_header_does_not_buy_a_new_bucket(
    database_url: str, tmp_path: Path
) -> None:
    """From a peer that is not a trusted proxy, X-Forwarded-For and Forwarded are ignored for
    the limit key itself, not only for what the app is told."""
    settings = make_settings(database_url, tmp_path, ratelimit_ip="3/minute")
    async with open_harness(settings) as h:
        statuses = [
            (
                await h.client.get(
                    "/public",
                    headers={"X-Forwarded-For": f"198.51.100.{n}", "Forwarded": f"for=192.0.2.{n}"},
                )
            ).status_code
            for n in range(5)
        ]
    assert statuses == [200, 200, 200, 429, 429]


# ------------------------------------------------------------------- per-route limits


async def test_a_route_limit_is_shared_by_every_spelling_and_kept_per_principal(
    database_url: str, tmp_path: Path
) -> None:
    """``require(rate=...)`` (SPEC §2.2) keys on the route template and the principal: ids in
    the path, a trailing slash or case do not buy a new bucket; another user has their own."""
    from fastapi import FastAPI

    from bastion import Bastion, Principal

    bastion = Bastion(make_settings(database_url, tmp_path))
    app = FastAPI(lifespan=bastion.lifespan)
    bastion.protect(app)

    @app.get("/exports/{export_id}")
    async def export(
        export_id: int,
        user: Principal = bastion.require(rate="2/minute"),  # noqa: B008
    ) -> dict[str, int]:
        return {"id": export_id}

    import httpx

    async with bastion.lifespan(app):
        if not bastion.db.is_sqlite:
            await bastion.db.upgrade()
        for name in ("alice", "bob"):
            await bastion.accounts.create_user(name, STRONG_PASSWORD, ["user"])
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            tokens = {}
            for name in ("alice", "bob"):
                login = await c.post(
                    "/auth/token",
                    data={"grant_type": "password", "username": name, "password": STRONG_PASSWORD},
                )
                tokens[name] = {"Authorization": f"Bearer {login.json()['access_token']}"}
            first = await c.get("/exports/1", headers=tokens["alice"])
            second = await c.get("/exports/2", headers=tokens["alice"])
            third = await c.get("/exports/3", headers=tokens["alice"])
            bobs = await c.get("/exports/1", headers=tokens["bob"])
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert '"route";q=2;w=60' in first.headers["ratelimit-policy"]
    assert third.json()["type"] == QUOTA_EXCEEDED
    assert bobs.status_code == 200


async def test_a_429_stays_a_429_when_its_record_cannot_be_written(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit trail failing (a locked or unreachable database) must not turn the refusal
    into a bare 500 without the request id and the security headers."""
    from bastion.errors import ServiceUnavailable

    settings = make_settings(
        database_url, tmp_path, ratelimit_ip="1/minute", cors_origins=["https://app.example"]
    )
    async with open_harness(settings) as h:

        async def unwritable(*_args: object, **_kwargs: object) -> None:
            raise ServiceUnavailable("The database is unavailable; try again shortly.")

        monkeypatch.setattr(h.bastion.audit, "record_throttled", unwritable)
        assert (await h.client.get("/public")).status_code == 200
        limited = await h.client.get("/public", headers={"Origin": "https://app.example"})
    assert limited.status_code == 429
    assert limited.json()["type"] == QUOTA_EXCEEDED
    assert "x-request-id" in limited.headers
    assert limited.headers["x-content-type-options"] == "nosniff"
    # and a page of the granted origin can read it (and its Retry-After)
    assert limited.headers["access-control-allow-origin"] == "https://app.example"
