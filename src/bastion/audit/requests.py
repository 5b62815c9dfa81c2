"""One structured log line and one set of counters per request (SPEC §6), as a pure ASGI layer.

The line names the route *template* (``/items/{item_id}``), never the raw path or query string,
so ids and ``?api_key=`` values cannot reach the log, and metric labels stay few.
"""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.audit.events import RequestContext, current_request
from bastion.audit.metrics import Metrics

logger = structlog.get_logger("bastion.request")

UNMATCHED = "<unmatched>"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        client = scope.get("client")
        context = RequestContext(
            ip=state.get("client_ip") or (client[0] if client else None),
            user_agent=(_header(scope, b"user-agent") or "")[:256] or None,
            request_id=state.get("request_id"),
        )
        token = current_request.set(context)
        started = time.perf_counter()
        status = 500

        async def send_and_observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_observe)
        finally:
            current_request.reset(token)
            self._observe(scope, context, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, context: RequestContext, status: int, took: float) -> None:
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        method = scope["method"]
        self.metrics.observe_request(method, route, status, took)
        principal = scope.get("state", {}).get("principal")
        logger.info(
            "request",
            method=method,
            route=route,
            status=status,
            duration_ms=round(took * 1000, 2),
            request_id=context.request_id,
            principal=getattr(principal, "subject", None),
            client_ip=context.ip,
        )
