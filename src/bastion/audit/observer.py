"""Security events for refused requests (SPEC §6): 401, 403, CSRF failures and 429s.

Each 401, 403 and CSRF failure is stored; a 429 at most once per caller and route a second
(see :meth:`AuditRecorder.record_throttled`). Every one is counted.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from starlette.types import Scope

from bastion.audit.events import EventType, Outcome, current_request
from bastion.audit.metrics import Metrics
from bastion.audit.recorder import AuditRecorder
from bastion.errors import (
    AuthenticationError,
    BastionError,
    CSRFFailed,
    InvalidCredentials,
    PermissionDenied,
    RateLimited,
)
from bastion.key_service import InvalidApiKey
from bastion.lockout import AccountLocked
from bastion.ratelimit.ip_limit import client_ip
from bastion.ratelimit.limiter import Decision
from bastion.sessions import InvalidSession

AddressKey = Callable[[str], str]
"""The per-IP limits' key of a client address (an IPv6 client's /64): a 429 is recorded at most
once a second per such key, so rotating through one's own /64 cannot write a row per request."""


class RefusalObserver:
    """Turns refusals into events; installed as the error handlers' observer."""

    def __init__(self, audit: AuditRecorder, metrics: Metrics, keys: AddressKey = str) -> None:
        self._audit = audit
        self._metrics = metrics
        self._keys = keys

    async def __call__(self, request: Request, exc: BastionError) -> None:
        if isinstance(exc, RateLimited):
            self._metrics.rate_limited.labels(
                "lockout" if isinstance(exc, AccountLocked) else exc.policy
            ).inc()
        if isinstance(exc, AuthenticationError) and not isinstance(exc, InvalidCredentials):
            # A refused login is counted with its login_failed event, under its own scheme.
            self._metrics.count_authentication(_scheme_of(exc), "failure")
        event = _event_for(exc)
        if event is None:
            return
        principal = getattr(request.state, "principal", None)
        actor = getattr(principal, "username", None) or getattr(exc, "username", None)
        route = getattr(request.scope.get("route"), "path", None) or "<unmatched>"
        details = {"method": request.method, "problem": exc.problem_type}
        if event is not EventType.RATE_LIMITED:
            await self._audit.record(
                event, outcome=Outcome.DENIED, actor=actor, subject=route, details=details
            )
            return
        context = current_request.get()
        await self._audit.record_throttled(
            event,
            f"{actor or (self._keys(context.ip) if context and context.ip else '')}|{route}",
            outcome=Outcome.DENIED,
            actor=actor,
            subject=route,
            details=details,
        )


def _scheme_of(exc: AuthenticationError) -> str:
    """Which credential failed: the kind of the one that was sent, or ``none``."""
    if isinstance(exc, InvalidApiKey):
        return "api_key"
    if isinstance(exc, InvalidSession):
        return "session"
    return "bearer" if exc.token_error else "none"


def _event_for(exc: BastionError) -> EventType | None:
    if isinstance(exc, AccountLocked):
        return None
    if isinstance(exc, AuthenticationError):
        return EventType.UNAUTHORIZED
    if isinstance(exc, CSRFFailed):
        return EventType.CSRF_FAILED
    if isinstance(exc, PermissionDenied):
        return EventType.FORBIDDEN
    if isinstance(exc, RateLimited):
        return EventType.RATE_LIMITED
    return None


class IPLimitObserver:
    """Records the edge's own 429s (per-IP limit), which never reach the error handlers."""

    def __init__(self, audit: AuditRecorder, metrics: Metrics, keys: AddressKey = str) -> None:
        self._audit = audit
        self._metrics = metrics
        self._keys = keys

    async def __call__(self, scope: Scope, decision: Decision) -> None:
        self._metrics.rate_limited.labels(decision.policy.name).inc()
        ip = client_ip(scope)
        await self._audit.record_throttled(
            EventType.RATE_LIMITED,
            f"ip|{self._keys(ip)}",
            subject=ip,
            details={"policy": decision.policy.name, "path": scope["path"][:200]},
        )
