"""One structured log line and one set of counters per request (SPEC §6), for every request
the edge sees, its own answers (400, 308, 413, 429) included. It runs inside the edge's one ASGI
layer (:class:`bastion.edge.middleware.RequestObserver`), not as a layer of its own.

The line names the route *template* (``/items/{item_id}``), never the raw path or query string,
so ids and ``?api_key=`` values cannot reach the log, and metric labels stay few.

Both are written once per turn of the event loop, for every request that ended in it, rather
than as each request ends: in one loop after the turn's requests, where the code runs warm,
instead of inside each, where every step of it found the caches cold from the rest of the
request; the turn's lines leave in one write (:func:`bastion.logs.write_together`). Measured on
the benchmark's public route (server CPU per request, one pinned core, 2026-12-04): 180 µs
written inside each request, 153 µs written per turn, 139 µs with no line at all. A line is
late by one turn of the loop (well under a millisecond under load); each is written in the
context its request ended in, so contextvars bound by the app still reach it; a scrape of
``/metrics`` and the server's shutdown write what is pending first.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections import deque
from contextlib import suppress
from contextvars import Context, Token, copy_context
from datetime import UTC, datetime
from threading import get_ident
from typing import Any, NamedTuple

import structlog
from starlette.types import Scope

from bastion.audit.events import RequestContext, current_request
from bastion.audit.metrics import Metrics
from bastion.logs import LineWriterFactory, write_together

LOGGER_NAME = "bastion.request"
logger = structlog.get_logger(LOGGER_NAME)

UNMATCHED = "<unmatched>"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class _Ended(NamedTuple):
    """What a request leaves for its line and counters: plain values, not its scope."""

    context: Context
    method: str
    route: str
    status: int
    seconds: float
    request_id: str | None
    principal: str | None
    client_ip: str | None
    ended_at: float
    """Epoch seconds: the line's time is the request's end, not the flush's."""


class RequestLog:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._logger: Any = None
        self._pending: deque[_Ended] = deque()
        """Appended to and drained from one end each: both are atomic, so requests ending on
        several threads' loops lose nothing to a flush running on another."""
        self._loop: tuple[asyncio.AbstractEventLoop, int] | None = None
        """The loop requests last ended on, with its thread's id, as one value."""
        self._flush_on: asyncio.AbstractEventLoop | None = None
        """The loop a flush is scheduled on; another loop (the first one gone, its scheduled
        flush with it, as a test client's portal closes) schedules its own."""
        _instances.add(self)

    def _forget_the_parents(self) -> None:
        """In a forked child: the parent's pending requests are the parent's to write, and its
        loop, which still looks running from here, will never turn in this process."""
        self._pending.clear()
        self._loop = self._flush_on = None

    def _line_logger(self) -> Any:
        """The logger for the request line, assembled once when structlog caches loggers on
        first use (as Bastion's configuration does): structlog's lazy proxy re-finds the cached
        logger on every call, through a failed attribute lookup, and that cost a third of the
        line. Without caching (an app's own configuration, the tests) every call goes through
        the proxy, so a change of configuration takes effect at once, as structlog promises."""
        if self._logger is not None:
            return self._logger
        if structlog.get_config().get("cache_logger_on_first_use"):
            # from a proxy of its own: the module's caches itself for good on first use
            self._logger = structlog.get_logger(LOGGER_NAME).bind()
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
        principal = scope.get("state", {}).get("principal")
        self._pending.append(
            _Ended(
                copy_context(),  # O(1): contexts are immutable mappings
                scope["method"],
                getattr(scope.get("route"), "path", None) or UNMATCHED,
                status,
                seconds,
                context.request_id if context else None,
                getattr(principal, "subject", None),
                context.ip if context else None,
                time.time(),
            )
        )
        known = self._loop
        if known is None or known[1] != get_ident() or not known[0].is_running():
            # asked only when the loop may have changed: asking is a getpid() system call
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # called outside a server: written at once
                self.flush()
                return
            self._loop = (loop, get_ident())
        else:
            loop = known[0]
        if self._flush_on is not loop:
            self._flush_on = loop
            # an empty context: the flush itself must not run in the first request's
            loop.call_soon(self.flush, context=Context())

    def flush(self) -> None:
        """Count and log every request ended since the last flush, in the order they ended.
        It never raises: a scrape of ``/metrics`` calls it, and must answer even when the log's
        stream has failed."""
        self._flush_on = None
        pending = self._pending
        with suppress(Exception), write_together():  # the stream failed: nowhere to say so
            line = self._line_logger()
            # Bastion's own pipeline keeps a time it is given; another may not render one
            stamped = isinstance(structlog.get_config().get("logger_factory"), LineWriterFactory)
            for _ in range(len(pending)):
                try:
                    ended = pending.popleft()
                except IndexError:  # a flush on another thread's loop took the rest
                    break
                self._write(line, ended, stamped)

    def _write(self, line: Any, ended: _Ended, stamped: bool) -> None:
        """One request's count and line, each on its own: a broken counter keeps the line."""
        try:
            self.metrics.observe_request(ended.method, ended.route, ended.status, ended.seconds)
        except Exception:
            _report(line, ended, "request_count_failed")
        try:
            ended.context.run(
                line.info,
                "request",
                method=ended.method,
                route=ended.route,
                status=ended.status,
                duration_ms=round(ended.seconds * 1000, 2),
                request_id=ended.request_id,
                principal=ended.principal,
                client_ip=ended.client_ip,
                **({"timestamp": datetime.fromtimestamp(ended.ended_at, UTC)} if stamped else {}),
            )
        except Exception:  # one request's failure must not lose the others' lines
            _report(line, ended, "request_log_failed")


def _report(line: Any, ended: _Ended, event: str) -> None:
    with suppress(Exception):  # logging itself fails: the other requests still go on
        ended.context.run(line.exception, event, request_id=ended.request_id)


_instances: weakref.WeakSet[RequestLog] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for log in list(_instances):
        log._forget_the_parents()


os.register_at_fork(after_in_child=_after_fork_in_child)
