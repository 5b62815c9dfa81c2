"""Tiny raw ASGI apps and a client, to drive the edge without FastAPI in between."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.types import Message, Receive, Scope, Send

from bastion.edge.middleware import EdgeMiddleware
from bastion.settings import BastionSettings

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INTERNET_CLIENT = ("203.0.113.9", 50000)
"""A peer from TEST-NET-3: never a trusted proxy in these tests."""

PROBLEM_KEYS = {"type", "title", "status", "detail"}


@dataclass
class Recorder:
    """An app that reads its whole body the way a handler does, remembers what it saw, and
    answers 200 with the client address and scheme the edge decided on."""

    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    scopes: list[Scope] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            self.chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        state = scope["state"]
        body = json.dumps({"client_ip": state["client_ip"], "scheme": state["scheme"]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"application/json"), *self.headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @property
    def was_called(self) -> bool:
        return bool(self.scopes)

    @property
    def bytes_received(self) -> int:
        return sum(len(c) for c in self.chunks)


def edge(app: ASGIApp, **settings: Any) -> EdgeMiddleware:
    return EdgeMiddleware(app, BastionSettings(**settings))


async def call(
    app: ASGIApp,
    method: str = "GET",
    url: str = "http://testserver/items",
    *,
    client: tuple[str, int] = INTERNET_CLIENT,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    content: bytes | AsyncIterator[bytes] | None = None,
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport) as http:
        return await http.request(method, url, headers=headers, content=content)


async def chunks_of(size: int, count: int, yielded: list[int]) -> AsyncIterator[bytes]:
    """A chunked body of ``count`` chunks; ``yielded`` tells how many the server pulled."""
    for _ in range(count):
        yielded.append(size)
        yield b"x" * size


async def run_raw(app: ASGIApp, scope: Scope, body: Sequence[bytes] = ()) -> list[Message]:
    """Call ``app`` with a hand-made scope; returns every message it sent."""
    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(body) - 1}
        for i, chunk in enumerate(body)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http_scope(
    headers: Sequence[tuple[bytes, bytes]] = ((b"host", b"testserver"),),
    *,
    client: tuple[str, int] | None = INTERNET_CLIENT,
    scheme: str = "http",
    method: str = "GET",
    path: str = "/items",
) -> Scope:
    return {
        "type": "http",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": list(headers),
        "client": client,
    }


def assert_edge_headers(response: httpx.Response) -> None:
    """What SPEC §3 wants on every response, whoever produced it."""
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["cache-control"] == "no-store"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) == PROBLEM_KEYS
    assert body["status"] == status
    assert body["detail"].endswith(".")
    return body
