"""One structured log line and one set of counters per request (SPEC §6), for every request
the edge sees, its own answers (400, 308, 413, 429) included. It runs inside the edge's one ASGI
layer (:class:`bastion.edge.middleware.RequestObserver`), not as a layer of its own.

The line names the route *template* (``/items/{item_id}``), never the raw path or query string,
so ids and ``?api_key=`` values cannot reach the log, and metric labels stay few.
"""

from __future__ import annotations

from contextvars import Token
from typing import Any

import structlog
from starlette.types import Scope

from bastion.audit.events import RequestContext, current_request
from bastion.audit.metrics import Metrics

logger = structlog.get_logger("bastion.request")

UNMATCHED = "<unmatched>"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestLog:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._logger: Any = None

    def _line_logger(self) -> Any:
        """The logger for the request line, assembled once when structlog caches loggers on
        first use (as Bastion's configuration does): structlog's lazy proxy re-finds the cached
        logger on every call, through a failed attribute lookup, and that cost a third of the
        line. Without caching (an app's own configuration, the tests) every call goes through
        the proxy, so a change of configuration takes effect at once, as structlog promises."""
        if self._logger is not None:
            return self._logger
        if structlog.get_config().get("cache_logger_on_first_use"):
            self._logger = logger.bind()
            return self._logger
        return logger

    def begin(self, scope: Scope) -> Token[RequestContext | None]:
        """Make the request's context (who and from where) known to the audit trail."""
        state = scope.setdefault("state", {})
        client = scope.get("client")
        context = RequestContext(
            ip=state.get("client_ip") or (client[0] if client else None),
            user_agent=(_header(scope, b"user-agent") or "")[:256] or None,
            request_id=state.get("request_id"),
        )
        return current_request.set(context)

    def end(self, scope: Scope, began: object, status: int, seconds: float) -> None:
        context = current_request.get()
        if isinstance(began, Token):
            current_request.reset(began)
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        method = scope["method"]
        self.metrics.observe_request(method, route, status, seconds)
        principal = scope.get("state", {}).get("principal")
        self._line_logger().info(
            "request",
            method=method,
            route=route,
            status=status,
            duration_ms=round(seconds * 1000, 2),
            request_id=context.request_id if context else None,
            principal=getattr(principal, "subject", None),
            client_ip=context.ip if context else None,
        )
