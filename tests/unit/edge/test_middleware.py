"""EdgeMiddleware, driven with tiny raw ASGI apps (SPEC §2.1, §3)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from bastion.edge.middleware import EdgeMiddleware

GENERATED_ID = re.compile(r"[0-9a-f]{32}")

ASGIApp = Callable[[Scope, Receive, Send], Any]


def plain_app(
    status: int = 200,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b'{"ok": true}',
) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *(headers or [])],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


async def get(app: ASGIApp, path: str = "/items", **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=EdgeMiddleware(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path, headers=headers)


# ----------------------------------------------------------------------------- request id


async def test_every_response_gets_a_generated_request_id() -> None:
    response = await get(plain_app())

    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


async def test_a_plain_client_request_id_is_echoed() -> None:
    response = await get(plain_app(), **{"X-Request-ID": "abc-123._X"})

    assert response.headers["x-request-id"] == "abc-123._X"


async def test_an_unsafe_client_request_id_is_replaced() -> None:
    response = await get(plain_app(), **{"X-Request-ID": "x" * 129})

    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


async def test_the_app_sees_the_same_request_id_as_the_client() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["state"]["request_id"])
        await plain_app()(scope, receive, send)

    response = await get(app)

    assert seen == [response.headers["x-request-id"]]


# ----------------------------------------------------------------------------- headers


async def test_security_headers_are_added_to_every_response() -> None:
    response = await get(plain_app(status=404))

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )


async def test_a_policy_the_app_set_itself_is_kept() -> None:
    docs_policy = b"default-src 'none'; script-src 'self'"

    response = await get(plain_app(headers=[(b"content-security-policy", docs_policy)]), "/docs")

    assert response.headers.get_list("content-security-policy") == [docs_policy.decode()]
    assert response.headers["x-frame-options"] == "DENY"


async def test_cache_control_no_store_is_added_when_the_app_sets_none() -> None:
    response = await get(plain_app())

    assert response.headers["cache-control"] == "no-store"


async def test_an_existing_cache_control_is_kept() -> None:
    response = await get(plain_app(headers=[(b"cache-control", b"public, max-age=60")]))

    assert response.headers.get_list("cache-control") == ["public, max-age=60"]


async def test_a_header_the_app_set_itself_is_not_duplicated() -> None:
    response = await get(plain_app(headers=[(b"x-frame-options", b"SAMEORIGIN")]))

    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]


async def test_the_body_passes_through_unchanged() -> None:
    response = await get(plain_app(body=b'{"hello": "world"}'))

    assert response.status_code == 200
    assert response.json() == {"hello": "world"}


# ----------------------------------------------------------------------------- failures


async def test_an_exception_before_the_response_becomes_a_bare_500_problem() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("db password is hunter2 at /srv/bastion/secret.py line 42")

    response = await get(app)

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "The server could not complete the request.",
    }
    for leak in ("hunter2", "Traceback", "RuntimeError", "secret.py"):
        assert leak not in response.text
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert int(response.headers["content-length"]) == len(response.content)


async def test_an_exception_after_the_response_started_sends_no_second_start() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope: Scope = {
        "type": "http",
        "path": "/items",
        "headers": [(b"host", b"testserver")],
        "method": "GET",
    }
    await EdgeMiddleware(app)(scope, receive, send)

    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1
    assert starts[0]["status"] == 200
    assert all(b"Internal Server Error" not in m.get("body", b"") for m in sent)


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
async def test_non_http_scopes_pass_through_untouched(scope_type: str) -> None:
    calls: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((scope, receive, send))

    async def receive() -> Message:
        return {"type": f"{scope_type}.startup"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    scope: Scope = {"type": scope_type, "path": "/ws", "headers": []}
    await EdgeMiddleware(app)(scope, receive, send)

    assert len(calls) == 1
    passed_scope, passed_receive, passed_send = calls[0]
    assert passed_scope is scope
    assert "state" not in scope
    assert passed_receive is receive
    assert passed_send is send


async def test_an_exception_in_a_non_http_scope_is_not_swallowed() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("lifespan failed")

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    with pytest.raises(RuntimeError, match="lifespan failed"):
        await EdgeMiddleware(app)({"type": "lifespan"}, receive, send)
