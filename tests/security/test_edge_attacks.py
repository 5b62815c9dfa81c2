"""Attacks on the edge (SPEC §2.1, §3, §5): spoofed client addresses, hostile Host headers,
oversized and lying bodies, cross-origin reads. First against the edge alone with raw ASGI apps,
then through the real reference app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from bastion.edge.middleware import EdgeMiddleware
from bastion.settings import BastionSettings
from tests.conftest import Harness, make_settings, open_harness
from tests.security.conftest import Account

MIB = 1024 * 1024
CHUNK = 64 * 1024
ATTACKER = ("203.0.113.66", 40000)
PROXY = ("10.0.0.1", 443)
APP_ORIGIN = "https://app.example.com"
EVIL = "https://evil.example"
ALLOWED_HOSTS = ["api.example.com", "*.api.example.com"]


class Recorder:
    """Reads the whole body as a handler would, and answers with what the edge told it."""

    def __init__(self) -> None:
        self.calls = 0
        self.bytes_received = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        more = True
        while more:
            message = await receive()
            self.bytes_received += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = scope["state"]["client_ip"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def send_to(
    app: Any,
    method: str = "GET",
    url: str = "http://testserver/items",
    *,
    peer: tuple[str, int] = ATTACKER,
    headers: dict[str, str] | None = None,
    content: bytes | AsyncIterator[bytes] | None = None,
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=peer)
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.request(method, url, headers=headers, content=content)


async def body_of(total: int, pulled: list[int]) -> AsyncIterator[bytes]:
    """A chunked body with no Content-Length; ``pulled`` counts what the server asked for."""
    for _ in range(total // CHUNK):
        pulled.append(CHUNK)
        yield b"x" * CHUNK


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status


# ----------------------------------------------------------------------------- client address


@pytest.mark.parametrize(
    "spoof",
    [
        {"X-Forwarded-For": "1.1.1.1"},
        {"X-Forwarded-For": "10.0.0.5"},
        {"Forwarded": "for=1.1.1.1"},
        {"X-Real-IP": "1.1.1.1", "True-Client-IP": "1.1.1.1", "CF-Connecting-IP": "1.1.1.1"},
    ],
    ids=["xff", "xff-trusted-looking", "forwarded", "vendor-headers"],
)
@pytest.mark.parametrize("trusted", [[], ["10.0.0.0/8"]], ids=["no-proxies", "other-proxies"])
async def test_a_spoofed_forwarding_header_from_an_untrusted_peer_changes_nothing(
    spoof: dict[str, str], trusted: list[str]
) -> None:
    response = await send_to(
        EdgeMiddleware(Recorder(), BastionSettings(trusted_proxies=trusted)), headers=spoof
    )

    assert response.text == ATTACKER[0]


async def test_a_local_peer_is_not_a_trusted_proxy_by_default() -> None:
    response = await send_to(
        EdgeMiddleware(Recorder(), BastionSettings()),
        peer=("127.0.0.1", 5000),
        headers={"X-Forwarded-For": "1.1.1.1"},
    )

    assert response.text == "127.0.0.1"


async def test_behind_a_trusted_proxy_a_client_prepended_address_is_ignored() -> None:
    """The attacker sent ``X-Forwarded-For: 1.1.1.1``; the proxy appended the real address."""
    response = await send_to(
        EdgeMiddleware(Recorder(), BastionSettings(trusted_proxies=["10.0.0.0/8"])),
        peer=PROXY,
        headers={"X-Forwarded-For": f"1.1.1.1, {ATTACKER[0]}"},
    )

    assert response.text == ATTACKER[0]


async def test_behind_two_trusted_proxies_the_right_most_untrusted_address_is_used() -> None:
    response = await send_to(
        EdgeMiddleware(Recorder(), BastionSettings(trusted_proxies=["10.0.0.0/8"])),
        peer=PROXY,
        headers={"X-Forwarded-For": f"10.0.0.9, 1.1.1.1, {ATTACKER[0]}, 10.0.0.2"},
    )

    assert response.text == ATTACKER[0]


async def test_a_forwarded_header_smuggled_past_an_xff_proxy_is_not_believed() -> None:
    response = await send_to(
        EdgeMiddleware(Recorder(), BastionSettings(trusted_proxies=["10.0.0.0/8"])),
        peer=PROXY,
        headers={"Forwarded": "for=1.1.1.1", "X-Forwarded-For": ATTACKER[0]},
    )

    assert response.text != "1.1.1.1"


# ----------------------------------------------------------------------------- Host


async def test_an_unlisted_host_gets_400_and_no_location() -> None:
    app = Recorder()
    settings = BastionSettings(allowed_hosts=ALLOWED_HOSTS, https_redirect=True)

    response = await send_to(EdgeMiddleware(app, settings), headers={"Host": "evil.example"})

    assert_problem(response, 400)
    assert "location" not in response.headers
    assert app.calls == 0


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "api.example.com.evil.example",
        "evil.example#.api.example.com",
        "evil.example/.api.example.com",
        "evil.example\\.api.example.com",
        "api.example.com@evil.example",
        "evil.example:443@api.example.com",
        "evil.example?.api.example.com",
        "api.example.com:80@evil.example",
        "evil.example%2f.api.example.com",
        "evilapi.example.com",
        "a.api.example.com",
        "API.EXAMPLE.COM:8080",
        "[::1]",
    ],
)
async def test_the_https_redirect_never_points_at_an_unlisted_host(host: str) -> None:
    settings = BastionSettings(allowed_hosts=ALLOWED_HOSTS, https_redirect=True)

    response = await send_to(
        EdgeMiddleware(Recorder(), settings),
        url="http://api.example.com/items?next=//evil.example",
        headers={"Host": host, "X-Forwarded-Host": "evil.example"},
    )

    if response.status_code == 400:
        assert "location" not in response.headers
        return
    assert response.status_code == 308
    location = httpx.URL(response.headers["location"])
    assert location.scheme == "https"
    assert location.host in {"api.example.com", "a.api.example.com"}
    assert location.port is None
    assert location.userinfo == b""


# ----------------------------------------------------------------------------- bodies


async def test_a_chunked_2_mib_body_gets_413_without_being_read_whole() -> None:
    app = Recorder()
    pulled: list[int] = []

    response = await send_to(
        EdgeMiddleware(app, BastionSettings()), "POST", content=body_of(2 * MIB, pulled)
    )

    assert_problem(response, 413)
    assert_security_headers(response)
    assert app.bytes_received <= MIB
    assert sum(pulled) <= MIB + CHUNK, "the edge pulled more than the limit from the client"


async def test_a_lying_small_content_length_with_a_big_body_gets_413() -> None:
    app = Recorder()

    response = await send_to(
        EdgeMiddleware(app, BastionSettings()),
        "POST",
        headers={"Content-Length": "2"},
        content=b"x" * (2 * MIB),
    )

    assert_problem(response, 413)
    assert app.bytes_received == 0


async def test_an_absurd_content_length_is_a_413_not_a_crash() -> None:
    response = await send_to(
        EdgeMiddleware(Recorder(), BastionSettings()),
        "POST",
        headers={"Content-Length": "9" * 5000},
        content=b"x",
    )

    assert_problem(response, 413)


# ----------------------------------------------------------------------------- CORS


async def test_an_unlisted_origin_gets_no_cors_grant() -> None:
    settings = BastionSettings(cors_origins=[APP_ORIGIN], cors_allow_credentials=True)

    simple = await send_to(EdgeMiddleware(Recorder(), settings), headers={"Origin": EVIL})
    preflight = await send_to(
        EdgeMiddleware(Recorder(), settings),
        "OPTIONS",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "DELETE"},
    )

    for response in (simple, preflight):
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize(
    "origin",
    ["null", "https://app.example.com.evil.example", "http://app.example.com", APP_ORIGIN + "/"],
)
async def test_near_misses_of_a_listed_origin_get_no_grant(origin: str) -> None:
    settings = BastionSettings(cors_origins=[APP_ORIGIN], cors_allow_credentials=True)

    response = await send_to(EdgeMiddleware(Recorder(), settings), headers={"Origin": origin})

    assert "access-control-allow-origin" not in response.headers


def test_any_origin_with_credentials_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="CORS"):
        BastionSettings(cors_origins=["*"], cors_allow_credentials=True)


# ----------------------------------------------------------------------------- the real app


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> BastionSettings:
    return make_settings(database_url, tmp_path, cors_origins=[APP_ORIGIN])


async def test_the_real_app_refuses_an_unlisted_host(harness: Harness) -> None:
    response = await harness.client.get("/public", headers={"Host": "evil.example"})

    assert_problem(response, 400)
    assert "location" not in response.headers
    assert_security_headers(response)


async def test_the_real_apps_401_carries_the_security_headers(harness: Harness) -> None:
    response = await harness.client.get("/auth/me")

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_security_headers(response)


async def test_the_real_apps_404_carries_the_security_headers(harness: Harness) -> None:
    response = await harness.client.get("/no/such/route")

    assert_problem(response, 404)
    assert_security_headers(response)


async def test_the_real_app_refuses_an_announced_oversized_body(harness: Harness) -> None:
    response = await harness.client.post(
        "/auth/register",
        content=b"{" + b" " * (2 * MIB) + b"}",
        headers={"Content-Type": "application/json"},
    )

    assert_problem(response, 413)
    assert_security_headers(response)


async def test_the_real_app_answers_413_to_a_chunked_upload_not_400(
    harness: Harness, alice: Account
) -> None:
    """FastAPI turns a failure while reading a body into 400; the edge must still say 413."""
    pulled: list[int] = []

    response = await harness.client.post(
        "/items",
        content=body_of(2 * MIB, pulled),
        headers={**alice.headers, "Content-Type": "application/json"},
    )

    assert_problem(response, 413)
    assert_security_headers(response)
    assert sum(pulled) <= MIB + CHUNK


async def test_the_real_app_grants_only_the_listed_origin(harness: Harness) -> None:
    granted = await harness.client.get("/public", headers={"Origin": APP_ORIGIN})
    refused = await harness.client.get("/public", headers={"Origin": EVIL})
    preflight = await harness.client.options(
        "/items", headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"}
    )

    assert granted.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "access-control-allow-origin" not in refused.headers
    assert refused.status_code == 200
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
    assert_security_headers(preflight)


async def test_behind_a_tls_proxy_the_apps_own_redirects_stay_on_https(
    database_url: str, tmp_path: Path
) -> None:
    """FastAPI's trailing-slash redirect is built from the request's scheme: behind a trusted
    TLS-terminating proxy it must send the client to https, never down to plain HTTP."""
    settings = make_settings(database_url, tmp_path, trusted_proxies=["127.0.0.0/8"])
    async with open_harness(settings) as h:
        response = await h.client.get(
            "/items/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
        )
    assert response.status_code == 307
    assert response.headers["location"] == "https://testserver/items"
