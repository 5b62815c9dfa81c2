"""Per-IP rate limit for every route but the probes (SPEC §3), as a pure ASGI layer.

It also writes the ``RateLimit`` fields on the way out, for every policy any later layer
recorded in ``scope["state"]["ratelimit"]`` (principal, route, login), so that a response
describes all the limits that applied to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.errors import RateLimited, ServiceUnavailable, render_bastion_error
from bastion.ratelimit.headers import ratelimit_headers
from bastion.ratelimit.limiter import Decision, FailureMode, Limiter
from bastion.ratelimit.policies import Policy

UNLIMITED_PATHS = frozenset({"/health", "/ready"})
RefusalHook = Callable[[Scope, Decision], Awaitable[None]]
"""Told of each request this layer refuses (the audit trail and metrics listen)."""
STATE_KEY = "ratelimit"


def client_ip(scope: Scope) -> str:
    """The address the edge decided is the client's (trusted proxies applied), else the peer."""
    state = scope.get("state") or {}
    address = state.get("client_ip")
    if address:
        return str(address)
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def record(scope: Scope, decision: Decision) -> None:
    scope.setdefault("state", {}).setdefault(STATE_KEY, []).append(decision)


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: Limiter,
        policy: Policy,
        on_error: FailureMode = "open",
        on_refused: RefusalHook | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.policy = policy
        self.on_error = on_error
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            decision = await self.limiter.hit(self.policy, client_ip(scope), on_error=self.on_error)
        except ServiceUnavailable as exc:  # storage down and this limit fails closed
            await render_bastion_error(exc)(scope, receive, send)
            return
        decisions: list[Decision] = scope.setdefault("state", {}).setdefault(STATE_KEY, [])
        decisions.append(decision)

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *ratelimit_headers(decisions)]
            await send(message)

        if not decision.is_allowed:
            if self.on_refused is not None:
                await self.on_refused(scope, decision)
            response = render_bastion_error(RateLimited(decision.reset_after))
            await response(scope, receive, send_with_fields)
            return
        await self.app(scope, receive, send_with_fields)
