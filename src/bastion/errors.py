"""Bastion's exception tree, and the one place it becomes HTTP (SPEC §3).

Core code raises a :class:`BastionError` subclass and never builds a response by hand, so every
error a client can see is ``application/problem+json`` (RFC 9457) with the right status,
``WWW-Authenticate`` challenge and ``Cache-Control``. The OAuth2 endpoints are the exception the
RFCs demand: :class:`OAuthError` renders the RFC 6749 §5.2 body instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

PROBLEM_JSON = "application/problem+json"
REALM = 'realm="bastion"'
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class BastionError(Exception):
    """Base of every error Bastion turns into a response."""

    status: ClassVar[int] = 500
    problem_type: ClassVar[str] = "about:blank"
    title: ClassVar[str] = "Internal Server Error"
    default_detail: ClassVar[str] = "The server could not complete the request."

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None):
        self.detail = detail or self.default_detail
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.detail)

    def extra_members(self) -> dict[str, Any]:
        """Problem members beyond the standard five (RFC 9457 §3.2)."""
        return {}

    def response_headers(self) -> dict[str, str]:
        return dict(self.headers)


class BadRequest(BastionError):
    status = 400
    title = "Bad Request"
    default_detail = "The request is malformed."


class AmbiguousCredentials(BadRequest):
    """SPEC §2.3: a bearer token *and* an API key is refused, never resolved by guessing."""

    problem_type = "urn:bastion:problem:ambiguous-credentials"
    default_detail = "Send one credential: a bearer token or an API key, not both."


class AuthenticationError(BastionError):
    """401: credentials missing, malformed, expired, revoked or unknown (SPEC §3).

    ``token_error`` is set when a bearer token was sent and is bad; it becomes the RFC 6750
    ``error="invalid_token"`` challenge. ``schemes`` lists every scheme the route accepts, each of
    which gets its own challenge.
    """

    status = 401
    problem_type = "urn:bastion:problem:unauthenticated"
    title = "Unauthorized"
    default_detail = "Authentication is required to access this resource."

    def __init__(
        self,
        detail: str | None = None,
        *,
        token_error: bool = False,
        schemes: Sequence[str] = ("bearer",),
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(detail, headers=headers)
        self.token_error = token_error
        self.schemes = tuple(schemes)

    def response_headers(self) -> dict[str, str]:
        """``Bearer`` always (every Bastion API has the token endpoint), with the RFC 6750 error
        when a bearer token was sent and is bad; ``ApiKey`` too where keys are accepted. Cookie
        sessions have no registered challenge scheme, so they add none."""
        challenge = f"Bearer {REALM}"
        if self.token_error:
            challenge += f', error="invalid_token", error_description="{_quoted(self.detail)}"'
        challenges = [challenge]
        if "api_key" in self.schemes:
            challenges.append(f"ApiKey {REALM}")
        return {**NO_STORE, "WWW-Authenticate": ", ".join(challenges), **self.headers}


class InvalidToken(AuthenticationError):
    """A bearer token was sent and is bad: forged, expired, revoked, or for another audience."""

    problem_type = "urn:bastion:problem:invalid-token"
    default_detail = "The access token is invalid or has expired."

    def __init__(self, detail: str | None = None, *, schemes: Sequence[str] = ("bearer",)):
        super().__init__(detail, token_error=True, schemes=schemes)


class InvalidCredentials(AuthenticationError):
    """Wrong password or unknown user: one message for both, so nobody learns which (SPEC §4.3)."""

    problem_type = "urn:bastion:problem:invalid-credentials"
    default_detail = "The username or password is incorrect."


class PermissionDenied(BastionError):
    status = 403
    problem_type = "urn:bastion:problem:forbidden"
    title = "Forbidden"
    default_detail = "You do not have permission to perform this action."

    def response_headers(self) -> dict[str, str]:
        return {**NO_STORE, **self.headers}


class InsufficientScope(PermissionDenied):
    """RFC 6750 §3.1: good credentials, not enough scope; the challenge names what is needed."""

    problem_type = "urn:bastion:problem:insufficient-scope"
    default_detail = "The credential lacks the scope this resource requires."

    def __init__(self, required: Iterable[str], *, bearer: bool, detail: str | None = None):
        self.required = sorted(required)
        super().__init__(detail or f"This resource requires the scope: {' '.join(self.required)}.")
        self.bearer = bearer

    def response_headers(self) -> dict[str, str]:
        headers = super().response_headers()
        if self.bearer:
            headers["WWW-Authenticate"] = (
                f'Bearer {REALM}, error="insufficient_scope", scope="{" ".join(self.required)}"'
            )
        return headers


class MissingRole(InsufficientScope):
    """SPEC §3: a missing role is a 403 like a missing scope, with the same RFC 6750 challenge
    for bearer tokens; the challenge names what the route needs (``admin`` is both the role and
    a scope of that role, SPEC §4.7)."""

    problem_type = "urn:bastion:problem:missing-role"
    default_detail = "Your account lacks the role this resource requires."

    def __init__(self, required: Iterable[str] = (), *, bearer: bool = False) -> None:
        super().__init__(required, bearer=bearer, detail=self.default_detail)


class CSRFFailed(PermissionDenied):
    problem_type = "urn:bastion:problem:csrf-failed"
    default_detail = "The CSRF token is missing or does not match this session."

    def __init__(self, username: str | None = None) -> None:
        super().__init__()
        self.username = username
        """The session's user, for the ``csrf_failed`` event; never shown to the client."""

    def extra_members(self) -> dict[str, Any]:
        """``reason`` lets a client tell a CSRF refusal from a missing scope without parsing
        ``type``; it is the name of the event it leaves (SPEC §6)."""
        return {"reason": "csrf_failed"}


class NotFound(BastionError):
    """Also the answer for another user's object: the two must be indistinguishable (SPEC §3)."""

    status = 404
    title = "Not Found"
    default_detail = "The requested resource was not found."


class Conflict(BastionError):
    status = 409
    title = "Conflict"
    default_detail = "The request conflicts with the current state of the resource."


class PayloadTooLarge(BastionError):
    status = 413
    title = "Content Too Large"
    default_detail = "The request body is larger than the server accepts."


class UnsupportedMediaType(BastionError):
    status = 415
    title = "Unsupported Media Type"
    default_detail = "This endpoint accepts application/json only."


class ValidationFailed(BastionError):
    """422 with pydantic's ``loc``/``msg``/``type`` per error and never the submitted value."""

    status = 422
    problem_type = "urn:bastion:problem:validation-failed"
    title = "Unprocessable Content"
    default_detail = "The request has invalid fields."

    def __init__(self, errors: Sequence[Mapping[str, Any]], detail: str | None = None):
        super().__init__(detail)
        self.errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in errors
        ]

    def extra_members(self) -> dict[str, Any]:
        return {"errors": self.errors}


class RateLimited(BastionError):
    status = 429
    problem_type = QUOTA_EXCEEDED
    title = "Too Many Requests"
    default_detail = "Too many requests; try again later."

    def __init__(self, retry_after: int, detail: str | None = None, *, policy: str = "login"):
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)
        self.policy = policy
        """The limit that refused: ``ip``, ``principal``, ``route``, ``key``, ``login``."""


class ServiceUnavailable(BastionError):
    status = 503
    title = "Service Unavailable"
    default_detail = "The service is temporarily unavailable; try again shortly."

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: int = 1,
        checks: dict[str, str] | None = None,
    ):
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
        self.checks = checks

    def extra_members(self) -> dict[str, Any]:
        return {"checks": self.checks} if self.checks is not None else {}


class OAuthError(Exception):
    """RFC 6749 §5.2 error of the token and revocation endpoints: always 400, never cached."""

    def __init__(self, error: str, description: str):
        self.error = error
        self.description = description
        super().__init__(description)


def _quoted(text: str) -> str:
    """RFC 7235 quoted-string content: no quotes or backslashes, printable ASCII only."""
    return "".join(c for c in text if c.isascii() and c.isprintable() and c not in '"\\')


# ----------------------------------------------------------------------------- rendering


def problem_response(
    status: int,
    detail: str,
    *,
    problem_type: str = "about:blank",
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    body.update(extra or {})
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def render_bastion_error(exc: BastionError) -> JSONResponse:
    return problem_response(
        exc.status,
        exc.detail,
        problem_type=exc.problem_type,
        title=exc.title,
        headers=exc.response_headers(),
        extra=exc.extra_members(),
    )


def render_oauth_error(exc: OAuthError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=400,
        headers=NO_STORE,
    )


_HTTP_DETAILS = {
    404: "The requested resource was not found.",
    405: "This method is not allowed on this resource.",
    400: "The request is malformed.",
}


ErrorObserver = Callable[[Request, BastionError], Awaitable[None]]
"""Called for every Bastion error before it is rendered (the audit trail listens here)."""


async def _on_oauth_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return render_oauth_error(exc)


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return render_bastion_error(ValidationFailed(list(exc.errors())))


async def _on_http_exception(_: Request, exc: Exception) -> Response:
    """Starlette's own 404/405/400 become problems too; their ``detail`` is replaced by a sentence
    of ours, since a framework detail may carry internals."""
    assert isinstance(exc, StarletteHTTPException)
    detail = _HTTP_DETAILS.get(exc.status_code, HTTPStatus(exc.status_code).description + ".")
    headers = dict(exc.headers or {})
    return problem_response(exc.status_code, detail, headers=headers)


def install_error_handlers(app: FastAPI, observe: ErrorObserver | None = None) -> None:
    """The one place where exceptions become HTTP answers."""

    async def on_bastion_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BastionError)
        if observe is not None:
            await observe(request, exc)
        return render_bastion_error(exc)

    app.add_exception_handler(BastionError, on_bastion_error)
    app.add_exception_handler(OAuthError, _on_oauth_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)


def internal_error_response() -> JSONResponse:
    """The body of an unexpected failure: nothing about what went wrong inside."""
    return problem_response(500, "The server could not complete the request.")
