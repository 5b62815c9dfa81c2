"""The order of the edge (SPEC §2.1): request id, client address, trusted hosts, HTTPS redirect,
body limit, CORS, security headers; and every answer the edge gives carries the same headers as
the app's do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from bastion.audit.requests import RequestLog
from bastion.core import Bastion
from bastion.edge.middleware import EdgeMiddleware
from bastion.ratelimit.ip_limit import IPLimit
from bastion.settings import BastionSettings
from tests.conftest import TEST_SECRET
from tests.unit.edge.asgi_apps import (
    Recorder,
    assert_edge_headers,
    assert_problem,
    call,
    chunks_of,
    edge,
    http_scope,
    run_raw,
)

APP = "https://app.example.com"
SETTINGS: dict[str, Any] = {
    "allowed_hosts": ["api.example.com"],
    "https_redirect": True,
    "trusted_proxies": ["10.0.0.0/8"],
    "cors_origins": [APP],
    "max_body_bytes": 4096,
}
OVERSIZED = b"x" * 5000
PROXY = ("10.0.0.1", 1234)
OVER_TLS = {"X-Forwarded-Proto": "https"}


async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom")


EDGE_ANSWERS = {
    "unknown-host": ("GET", "https://evil.example/items", {}, None, 400),
    "redirect": ("GET", "http://api.example.com/items", {}, None, 308),
    "too-large": ("POST", "https://api.example.com/items", {}, OVERSIZED, 413),
    "preflight": (
        "OPTIONS",
        "https://api.example.com/items",
        {"Origin": APP, "Access-Control-Request-Method": "POST"},
        None,
        204,
    ),
}


@pytest.mark.parametrize("case", EDGE_ANSWERS.values(), ids=EDGE_ANSWERS.keys())
async def test_every_answer_of_the_edge_carries_the_request_id_and_security_headers(
    case: tuple[str, str, dict[str, str], bytes | None, int],
) -> None:
    method, url, headers, content, status = case
    app = Recorder()

    response = await call(
        edge(app, **SETTINGS),
        method,
        url,
        headers={**headers, "X-Request-ID": "trace-42"},
        content=content,
    )

    assert response.status_code == status
    assert response.headers["x-request-id"] == "trace-42"
    assert_edge_headers(response)
    assert not app.was_called


@pytest.mark.parametrize("status", [401, 404, 413, 429])
async def test_the_apps_error_responses_get_the_headers_too(status: int) -> None:
    response = await call(edge(Recorder(status=status)))

    assert response.status_code == status
    assert_edge_headers(response)


async def test_a_failure_in_the_app_becomes_a_500_with_the_headers() -> None:
    response = await call(edge(failing_app, **SETTINGS), url="https://api.example.com/")

    assert_problem(response, 500)
    assert_edge_headers(response)
    assert response.headers["strict-transport-security"]


async def test_the_client_is_resolved_before_the_host_is_refused() -> None:
    scope = http_scope(
        [(b"host", b"evil.example"), (b"x-forwarded-for", b"198.51.100.7")], client=PROXY
    )

    sent = await run_raw(edge(Recorder(), **SETTINGS), scope)

    assert sent[0]["status"] == 400
    assert scope["state"]["client_ip"] == "198.51.100.7"
    assert scope["state"]["request_id"]


async def test_the_host_is_checked_before_the_redirect() -> None:
    response = await call(edge(Recorder(), **SETTINGS), url="http://evil.example/items")

    assert_problem(response, 400)
    assert "location" not in response.headers


async def test_the_host_is_checked_before_the_body_limit() -> None:
    response = await call(
        edge(Recorder(), **SETTINGS), "POST", "https://evil.example/", content=OVERSIZED
    )

    assert_problem(response, 400)


async def test_the_forwarded_scheme_is_known_before_the_redirect_is_decided() -> None:
    response = await call(
        edge(Recorder(), **SETTINGS),
        url="http://api.example.com/items",
        client=PROXY,
        headers=OVER_TLS,
    )

    assert response.status_code == 200


async def test_the_redirect_comes_before_the_body_limit() -> None:
    response = await call(
        edge(Recorder(), **SETTINGS), "POST", "http://api.example.com/items", content=OVERSIZED
    )

    assert response.status_code == 308


async def test_the_body_limit_comes_before_cors() -> None:
    response = await call(
        edge(Recorder(), **SETTINGS),
        "OPTIONS",
        "https://api.example.com/items",
        headers={"Origin": APP, "Access-Control-Request-Method": "POST"},
        content=OVERSIZED,
    )

    assert_problem(response, 413)


async def test_a_413_found_while_streaming_carries_the_cors_grant() -> None:
    """A browser app can read why its upload failed."""
    yielded: list[int] = []

    response = await call(
        edge(Recorder(), **SETTINGS),
        "POST",
        "https://api.example.com/items",
        headers={"Origin": APP},
        content=chunks_of(1024, 16, yielded),
    )

    assert_problem(response, 413)
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["strict-transport-security"]


async def test_the_app_sees_request_id_client_and_scheme_in_state() -> None:
    app = Recorder()

    await call(
        edge(app, **SETTINGS),
        url="http://api.example.com/items",
        client=PROXY,
        headers={**OVER_TLS, "X-Forwarded-For": "198.51.100.7", "X-Request-ID": "trace-7"},
    )

    state = app.scopes[0]["state"]
    assert state["request_id"] == "trace-7"
    assert state["client_ip"] == "198.51.100.7"
    assert state["scheme"] == "https"


def test_the_edge_is_one_layer_around_the_app() -> None:
    app = Recorder()

    assert edge(app).app is app


def protected_app(tmp_path: Path) -> tuple[FastAPI, BastionSettings]:
    settings = BastionSettings(
        secret_key=TEST_SECRET,
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}",
        allowed_hosts=["api.example.com"],
    )
    app = FastAPI()
    Bastion(settings).protect(app)
    return app, settings


def test_bastion_installs_one_layer_configured_from_its_settings(tmp_path: Path) -> None:
    app, settings = protected_app(tmp_path)

    assert [m.cls for m in app.user_middleware] == [EdgeMiddleware], (
        "one layer: the per-IP limit and the request log run inside the edge's"
    )
    kwargs = app.user_middleware[0].kwargs
    assert kwargs["settings"] is settings
    assert isinstance(kwargs["admission"], IPLimit)
    assert isinstance(kwargs["observer"], RequestLog)


async def test_the_installed_edge_uses_the_settings_of_bastion(tmp_path: Path) -> None:
    app, _ = protected_app(tmp_path)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/public")

    assert_problem(response, 400)
