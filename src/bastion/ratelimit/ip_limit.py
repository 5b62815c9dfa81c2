"""Per-IP rate limit for every route but the probes (SPEC §3), admitted by the edge.

It also writes the ``RateLimit`` fields on the way out, for every policy any later step
recorded in ``scope["state"]["ratelimit"]`` (principal, route, login), so that a response
describes all the limits that applied to it. It runs inside the edge's one ASGI layer
(:class:`bastion.edge.middleware.Admission`), not as a layer of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from starlette.responses import Response
from starlette.types import Scope

from bastion.errors import RateLimited, ServiceUnavailable, render_bastion_error
from bastion.ratelimit.headers import ratelimit_headers
from bastion.ratelimit.limiter import Decision, FailureMode, Limiter
from bastion.ratelimit.policies import Policy

logger = structlog.get_logger("bastion.ratelimit")

UNLIMITED_PATHS = frozenset({"/health", "/ready"})
RefusalHook = Callable[[Scope, Decision], Awaitable[None]]
"""Told of each request this limit refuses (the audit trail and metrics listen)."""
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


class IPLimit:
    def __init__(
        self,
        *,
        limiter: Limiter,
        policy: Policy,
        keys: Callable[[str], str] = str,
        on_error: FailureMode = "open",
        on_refused: RefusalHook | None = None,
    ) -> None:
        self.limiter = limiter
        self.policy = policy
        self.keys = keys
        """The limit's key for a client address (:class:`~bastion.ratelimit.addresses.LimitKeys`
        groups an IPv6 client's network)."""
        self.on_error = on_error
        self.on_refused = on_refused

    async def admit(self, scope: Scope) -> Response | None:
        """``None`` when within the limit (or a probe), else the 429 (or, with the storage
        down and this limit failing closed, the 503)."""
        if scope["path"] in UNLIMITED_PATHS:
            return None
        try:
            decision = await self.limiter.hit(
                self.policy, self.keys(client_ip(scope)), on_error=self.on_error
            )
        except ServiceUnavailable as exc:
            return render_bastion_error(exc)
        record(scope, decision)
        if decision.is_allowed:
            return None
        if self.on_refused is not None:
            try:
                await self.on_refused(scope, decision)
            except Exception:  # the refusal's record failing must never change the refusal
                logger.warning("rate_limited_not_recorded", policy=self.policy.name)
        return render_bastion_error(RateLimited(decision.reset_after))

    def response_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        return ratelimit_headers(scope.get("state", {}).get(STATE_KEY, ()))
