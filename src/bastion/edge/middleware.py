"""The edge as one pure ASGI layer (SPEC §2.1), in the spec's order: request id, client address,
trusted hosts, HTTPS redirect (and HSTS), body size limit, CORS, and the security headers on the
way out; plus a last line of defence that turns an unexpected failure into a bare 500 problem.
The per-IP limit (:class:`Admission`) and the request log (:class:`RequestObserver`) run inside
the same layer, after the edge's checks and around everything respectively.

Each concern is a small module of its own, tested alone; they are composed here into a single
layer because every nested middleware costs microseconds on every request (SPEC §8). The order is
the point: the host is validated before anything builds a URL from it (the redirect), the scheme
is known before the redirect is decided, and no body byte is read before both. Every response,
the app's or one the edge gives itself (400, 308, 413, a preflight, a 500), leaves through the one
``send`` that adds the request id and the security headers, so none can go without them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeAlias

import structlog
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.edge.body_limit import CountingReceive, body_too_large, declared_length_exceeds
from bastion.edge.cors import ANY_ORIGIN, VARY_ORIGIN, CorsPolicy, is_preflight
from bastion.edge.headers import SECURITY_HEADERS
from bastion.edge.hosts import ANY_HOST, AllowedHosts
from bastion.edge.https import HSTS_HEADER, https_location
from bastion.edge.proxy import ClientAddress, TrustedProxies
from bastion.edge.request_id import request_id_from_header
from bastion.errors import BadRequest, internal_error_response, render_bastion_error
from bastion.settings import BastionSettings

logger = structlog.get_logger("bastion.edge")

RawHeaders: TypeAlias = list[tuple[bytes, bytes]]
Answer: TypeAlias = tuple[int, RawHeaders, bytes]
"""A response the edge gives without the app: status, headers, body."""

_READ = frozenset(
    {
        b"host",
        b"x-request-id",
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"content-length",
        b"origin",
        b"access-control-request-method",
    }
)
"""The request headers the edge looks at, gathered in one pass over the request's headers."""


class Admission(Protocol):
    """What may refuse a request once the edge has checked it (the per-IP limit, SPEC §2.2),
    and the fields it adds to every response (``RateLimit``). Composed into the edge's own
    layer rather than nested as another: each layer costs every request its microseconds."""

    async def admit(self, scope: Scope) -> Response | None:
        """``None`` to let the request through, else the response that refuses it."""

    def response_headers(self, scope: Scope) -> RawHeaders:
        """Headers for this request's response, asked when it starts."""


class RequestObserver(Protocol):
    """Told of every request, the edge's own answers included (the request log, metrics)."""

    def begin(self, scope: Scope) -> object:
        """Before anything runs; the result comes back to :meth:`end`."""

    def end(self, scope: Scope, began: object, status: int, seconds: float) -> None:
        """After the response (or the failure) with its status and duration."""


NO_STORE = (b"cache-control", b"no-store")
UNKNOWN_HOST = "The Host header does not name a host this server answers for."


class EdgeMiddleware:
    """Bastion's edge; its configuration is read and checked once, here, from the settings.

    Without ``settings`` it uses ``BastionSettings()`` (the ``BASTION_*`` environment), whose
    development defaults answer for ``localhost``, ``127.0.0.1`` and ``testserver`` only."""

    def __init__(
        self,
        app: ASGIApp,
        settings: BastionSettings | None = None,
        *,
        admission: Admission | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        settings = settings if settings is not None else BastionSettings()
        self.admission = admission
        self.observer = observer
        _refuse_wildcards_in_production(settings)
        self.app = app
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.hosts = AllowedHosts(settings.effective_allowed_hosts)
        self.redirect_to_https = settings.redirect_to_https
        self.max_body_bytes = settings.max_body_bytes
        self.cors = CorsPolicy(
            settings.cors_origins, allow_credentials=settings.cors_allow_credentials
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _read_headers(scope["headers"])
        request_id = request_id_from_header(_first(headers, b"x-request-id"))
        client = self.proxies.resolve(
            scope.get("client"),
            scope.get("scheme", "http"),
            forwarded=headers.get(b"forwarded", ()),
            x_forwarded_for=headers.get(b"x-forwarded-for", ()),
            x_forwarded_proto=headers.get(b"x-forwarded-proto", ()),
        )
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = client.ip
        state["scheme"] = client.scheme
        if client.scheme != scope.get("scheme", "http"):
            # behind a trusted TLS proxy: URLs the app builds (a trailing-slash redirect,
            # request.url_for) must say https, never send the client back to plain HTTP
            scope["scheme"] = client.scheme
        peer = scope.get("client")
        if client.ip is not None and (peer is None or peer[0] != client.ip):
            scope["client"] = (client.ip, 0)
        outgoing = _Outgoing(send, request_id, scope, self.admission)
        if self.observer is None:
            await self._handle(scope, receive, headers, client, outgoing)
            return
        began, started = self.observer.begin(scope), time.perf_counter()
        try:
            await self._handle(scope, receive, headers, client, outgoing)
        finally:
            status = outgoing.status if outgoing.status is not None else 500
            self.observer.end(scope, began, status, time.perf_counter() - started)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        headers: dict[bytes, list[bytes]],
        client: ClientAddress,
        outgoing: _Outgoing,
    ) -> None:
        host = self.hosts.host_of(headers.get(b"host", ()))
        if host is None:
            answer: Answer | None = self._unknown_host(scope, headers, client)
        else:
            # counted before the edge's own answers (redirects, 413s, preflights), so that
            # those too are limited and carry the RateLimit fields (SPEC §3)
            if self.redirect_to_https and client.scheme == "https":
                outgoing.add([HSTS_HEADER])  # on every answer over HTTPS, a 429 included
            refusal = await self._admit(scope)
            if refusal is not None:
                self._cors(scope, headers, outgoing)  # its grant: a page can read the 429
                answer = refusal
            else:
                answer = self._answer_at_the_edge(scope, headers, client, outgoing, host)
        if answer is not None:
            await outgoing.answer(*answer)
            return
        await self._run_app(scope, receive, outgoing)

    async def _admit(self, scope: Scope) -> Answer | None:
        """The admission's refusal, if any; a failure of its own is the edge's bare 500, with
        the request id and the security headers like every other answer."""
        if self.admission is None:
            return None
        try:
            refusal = await self.admission.admit(scope)
        except Exception:
            logger.exception("admission_failed", request_id=scope["state"]["request_id"])
            return _problem(internal_error_response())
        return _problem(refusal) if refusal is not None else None

    def _unknown_host(
        self, scope: Scope, headers: dict[bytes, list[bytes]], client: ClientAddress
    ) -> Answer:
        logger.warning(
            "host_rejected",
            host=[_printable(v) for v in headers.get(b"host", ())],
            client_ip=client.ip,
            request_id=scope["state"]["request_id"],
        )
        return _problem(render_bastion_error(BadRequest(UNKNOWN_HOST)))

    def _answer_at_the_edge(
        self,
        scope: Scope,
        headers: dict[bytes, list[bytes]],
        client: ClientAddress,
        out: _Outgoing,
        host: str,
    ) -> Answer | None:
        """The checks after the host's that may answer without the app, in SPEC order; ``None``
        when all pass. Those that pass may still add response headers (HSTS, CORS) to ``out``."""
        if client.scheme != "https" and self.redirect_to_https:
            location = https_location(host, _raw_path(scope), scope.get("query_string", b""))
            return 308, [(b"location", location), (b"content-length", b"0")], b""
        if declared_length_exceeds(headers.get(b"content-length", ()), self.max_body_bytes):
            _log_too_large(scope, self.max_body_bytes)
            self._cors(scope, headers, out)  # its grant, so a browser can read the 413
            return _problem(render_bastion_error(body_too_large(self.max_body_bytes)))
        return self._cors(scope, headers, out)

    def _cors(
        self, scope: Scope, headers: dict[bytes, list[bytes]], out: _Outgoing
    ) -> Answer | None:
        """A granted preflight is answered here; any other request from a granted origin gets
        its grant on the app's response. An origin not granted gets nothing at all."""
        if not self.cors.is_enabled:
            return None
        out.varies_by_origin = True
        granted = self.cors.granted_origin(_first(headers, b"origin"))
        if granted is None:
            return None
        if is_preflight(scope["method"], headers.get(b"access-control-request-method", ())):
            return 204, self.cors.preflight_headers(granted), b""
        out.add(self.cors.response_headers(granted))
        return None

    async def _run_app(self, scope: Scope, receive: Receive, out: _Outgoing) -> None:
        """The app, its body counted; a failure becomes a bare 500, or the 413 it really was."""
        body = CountingReceive(receive, self.max_body_bytes)
        out.body = body
        try:
            await self.app(scope, body, out)
        except Exception:
            if not body.is_exceeded:
                logger.exception(
                    "unhandled_error", request_id=scope["state"]["request_id"], path=scope["path"]
                )
                if not out.is_started:
                    await out.answer(*_problem(internal_error_response()))
                return
        if body.is_exceeded:
            _log_too_large(scope, self.max_body_bytes)
            if not out.is_started:
                await out.answer(*_problem(render_bastion_error(body_too_large(body.limit))))


class _Outgoing:
    """The ``send`` the app gets, and the one every edge answer goes through.

    It adds the request id, the security headers, ``Cache-Control: no-store`` and whatever the
    checks granted (HSTS, CORS), each only when the response lacks it, so that a page setting its
    own (the docs' wider CSP) keeps it. Once the body limit is crossed it stops the app's response:
    replaced by the 413 when none has started, otherwise cut off, which leaves the response
    incomplete and makes the server abort the connection (SPEC §3: never read an oversized body
    into memory, never send a half-truth as complete)."""

    __slots__ = (
        "_admission",
        "_extra",
        "_is_muted",
        "_scope",
        "_send",
        "body",
        "is_started",
        "status",
        "varies_by_origin",
    )

    def __init__(
        self, send: Send, request_id: str, scope: Scope, admission: Admission | None = None
    ) -> None:
        self._send = send
        self._scope = scope
        self._admission = admission
        self.status: int | None = None
        self._extra: RawHeaders = [
            (b"x-request-id", request_id.encode("ascii")),
            *SECURITY_HEADERS,
            NO_STORE,
        ]
        self._is_muted = False
        self.body: CountingReceive | None = None
        self.is_started = False
        self.varies_by_origin = False

    def add(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self._extra.extend(headers)

    async def __call__(self, message: Message) -> None:
        if self._is_muted:
            return
        if self.body is not None and self.body.is_exceeded:
            self._is_muted = True
            if not self.is_started:
                await self.answer(*_problem(render_bastion_error(body_too_large(self.body.limit))))
            return
        await self._send_decorated(message)

    async def answer(self, status: int, headers: RawHeaders, body: bytes) -> None:
        await self._send_decorated(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await self._send_decorated({"type": "http.response.body", "body": body})

    async def _send_decorated(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.is_started = True
            self.status = int(message["status"])
            message["headers"] = self._decorated(message.get("headers", ()))
        await self._send(message)

    def _decorated(self, headers: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
        result = list(headers)
        present = {name.lower() for name, _ in result}
        result.extend(h for h in self._extra if h[0] not in present)
        if self._admission is not None:
            result.extend(self._admission.response_headers(self._scope))
        if self.varies_by_origin and (b"vary" not in present or not _varies_by_origin(result)):
            result.append(VARY_ORIGIN)
        return result


def _read_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    """Every line of the headers the edge reads, in order (repeats matter: two ``Host`` lines
    are refused, forwarding lines are read from the last)."""
    found: dict[bytes, list[bytes]] = {}
    for name, value in raw:
        if name in _READ:
            found.setdefault(name, []).append(value)
    return found


def _first(headers: dict[bytes, list[bytes]], name: bytes) -> bytes | None:
    lines = headers.get(name)
    return lines[0] if lines else None


def _varies_by_origin(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"vary":
            fields = {f.strip().lower() for f in value.split(b",")}
            if b"origin" in fields or b"*" in fields:
                return True
    return False


def _raw_path(scope: Scope) -> bytes:
    raw = scope.get("raw_path")
    return bytes(raw) if raw else str(scope["path"]).encode("utf-8")


def _problem(response: Response) -> Answer:
    return response.status_code, list(response.raw_headers), bytes(response.body)


def _printable(value: bytes) -> str:
    """A client's header value made safe to log: bounded, and non-ASCII escaped."""
    return value[:255].decode("ascii", "backslashreplace")


def _log_too_large(scope: Scope, limit: int) -> None:
    state = scope["state"]
    logger.warning(
        "body_too_large", limit=limit, client_ip=state["client_ip"], request_id=state["request_id"]
    )


def _refuse_wildcards_in_production(settings: BastionSettings) -> None:
    """SPEC §5: production refuses wildcard hosts and origins. :class:`~bastion.core.Bastion`
    refuses them with every other finding; the edge checks again so that it is safe on its own."""
    if not settings.is_production:
        return
    if ANY_HOST in settings.allowed_hosts:
        raise ValueError("BASTION_ALLOWED_HOSTS contains a wildcard '*': name the hosts")
    if ANY_ORIGIN in settings.cors_origins:
        raise ValueError("BASTION_CORS_ORIGINS contains '*': list exact origins")
