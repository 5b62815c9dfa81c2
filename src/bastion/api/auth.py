"""``/auth``: tokens, revocation, logout, identity, sign-up and password change (SPEC §4.2)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData

from bastion.api.dependencies import JSONBody, bastion_of, enforce, require, route_template
from bastion.api.guarded import GuardedRoute
from bastion.api.schemas import (
    Credentials,
    Me,
    OAuthErrorBody,
    PasswordChange,
    RegisteredUser,
    SessionCreated,
    TokenResponse,
)
from bastion.csrf import csrf_token_for
from bastion.errors import NO_STORE, InvalidCredentials, OAuthError, PermissionDenied
from bastion.principal import CredentialKind, Principal
from bastion.ratelimit.ip_limit import client_ip
from bastion.sessions import InvalidSession, cookie_names

router = APIRouter(prefix="/auth", tags=["auth"], route_class=GuardedRoute)

SECRET_QUERY_PARAMS = frozenset(
    {"password", "token", "refresh_token", "access_token", "api_key", "client_secret"}
)
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
SAME_SITE = cast(Literal["lax"], "Lax")
"""SPEC §4.3 spells it ``SameSite=Lax``; Starlette's hints want lower case but it writes the
value as given (and checks it case-insensitively)."""
INTERACTIVE = ("bearer", "session")
"""Credentials of a person at a client (not API keys): the ones that may log out or change the
account's password."""

_OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorBody, "description": "RFC 6749 §5.2 error"},
}


def _form_body_schema(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                FORM_MEDIA_TYPE: {
                    "schema": {"type": "object", "properties": fields, "required": required}
                }
            },
        }
    }


_TOKEN_FORM = _form_body_schema(
    {
        "grant_type": {"type": "string", "enum": ["password", "refresh_token"]},
        "username": {"type": "string"},
        "password": {"type": "string", "format": "password"},
        "refresh_token": {"type": "string"},
        "scope": {"type": "string"},
        "client_id": {"type": "string"},
    },
    ["grant_type"],
)
_REVOKE_FORM = _form_body_schema(
    {"token": {"type": "string"}, "token_type_hint": {"type": "string"}}, ["token"]
)


async def _oauth_form(request: Request) -> dict[str, str]:
    """The form of an OAuth2 request, refusing what RFC 6749 and SPEC §3 forbid: secrets in
    the query string (they end up in logs and browser history), a body that is not a form, and
    any parameter sent twice (RFC 6749 §3.2)."""
    if SECRET_QUERY_PARAMS & {key.lower() for key in request.query_params}:
        raise OAuthError(
            "invalid_request", "Credentials must be sent in the request body, not the URL."
        )
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise OAuthError("invalid_request", f"The request body must be {FORM_MEDIA_TYPE}.")
    try:
        form: FormData = await request.form(max_files=0, max_fields=32)
    except Exception:
        raise OAuthError("invalid_request", "The request body is not a valid form.") from None
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if key in fields:
            raise OAuthError("invalid_request", f"The parameter {key!r} was sent more than once.")
        if not isinstance(value, str):
            raise OAuthError("invalid_request", f"The parameter {key!r} is not acceptable.")
        fields[key] = value
    return fields


async def enforce_login_limit(request: Request) -> None:
    """Every grant counts toward the login limit: one bucket per route and client IP (SPEC §4.2),
    an IPv6 client's network counted as one (:mod:`bastion.ratelimit.addresses`). When the limit
    storage fails, login is closed rather than open to guessing (SPEC §7)."""
    bastion = bastion_of(request)
    key = f"{route_template(request)}|{bastion.limit_keys(client_ip(request.scope))}"
    await enforce(
        request, bastion.login_policy, key, on_error=bastion.settings.ratelimit_on_error or "closed"
    )


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise OAuthError("invalid_request", f"The parameter {name!r} is required.")
    return value


@router.post(
    "/token",
    response_model=TokenResponse,
    responses=_OAUTH_ERRORS,
    openapi_extra=_TOKEN_FORM,
    summary="OAuth2 token endpoint (password and refresh_token grants)",
)
async def token(request: Request) -> JSONResponse:
    """Answers its own response: the model above documents it, and validating a body this
    endpoint has just built, field by field, would only repeat the work (SPEC §8)."""
    await enforce_login_limit(request)
    fields = await _oauth_form(request)
    grant_type = _required(fields, "grant_type")
    tokens = bastion_of(request).tokens
    if grant_type == "password":
        pair = await tokens.password_grant(
            _required(fields, "username"), _required(fields, "password"), fields.get("scope")
        )
    elif grant_type == "refresh_token":
        pair = await tokens.refresh_grant(_required(fields, "refresh_token"), fields.get("scope"))
    else:
        raise OAuthError("unsupported_grant_type", "Supported grants: password, refresh_token.")
    return JSONResponse(pair.as_response(), headers=NO_STORE)


@router.post(
    "/revoke",
    responses=_OAUTH_ERRORS,
    openapi_extra=_REVOKE_FORM,
    summary="RFC 7009 token revocation",
)
async def revoke(request: Request) -> Response:
    fields = await _oauth_form(request)
    await bastion_of(request).tokens.revoke(_required(fields, "token"))
    return Response(status_code=200, headers=NO_STORE)


@router.post("/logout", status_code=204, summary="End this access token and its refresh family")
async def logout(
    request: Request, principal: Annotated[Principal, require(schemes=INTERACTIVE)]
) -> Response:
    bastion = bastion_of(request)
    response = Response(status_code=204, headers=NO_STORE)
    if principal.kind is CredentialKind.SESSION:
        await bastion.sessions.revoke_by_id(principal.credential_id, principal.username)
        clear_session_cookies(response)
    else:
        await bastion.tokens.logout(principal)
    return response


@router.get("/me", response_model=Me)
async def me(principal: Annotated[Principal, require()], response: Response) -> Me:
    response.headers.update(NO_STORE)
    return Me(
        id=principal.user_id,
        username=principal.username,
        roles=sorted(principal.roles),
        scopes=sorted(principal.scopes),
        auth=principal.kind.value,
    )


@router.post("/register", status_code=201, response_model=RegisteredUser, dependencies=[JSONBody])
async def register(request: Request, body: Credentials) -> RegisteredUser:
    bastion = bastion_of(request)
    if not bastion.settings.signup_open:
        raise PermissionDenied("Sign-up is closed on this server.")
    user = await bastion.accounts.create_user(body.username, body.password)
    return RegisteredUser(id=user.id, username=user.username)


@router.post("/password", status_code=204)
async def change_password(
    request: Request,
    principal: Annotated[Principal, require(schemes=INTERACTIVE)],
    _json: Annotated[None, JSONBody],
    body: PasswordChange,
) -> Response:
    bastion = bastion_of(request)
    ended = await bastion.accounts.change_password(
        principal.user_id, body.current_password, body.new_password
    )
    await bastion.tokens.forget_families(ended.families)
    await bastion.sessions.ended(ended.sessions)
    response = Response(status_code=204, headers=NO_STORE)
    if principal.kind is CredentialKind.SESSION:
        clear_session_cookies(response)
    return response


# ----------------------------------------------------------------------------- sessions


@router.post(
    "/session",
    response_model=SessionCreated,
    dependencies=[Depends(enforce_login_limit), JSONBody],
    responses={401: {"description": "Wrong username or password"}},
)
async def create_session(request: Request, body: Credentials, response: Response) -> SessionCreated:
    """Log in with a cookie session (SPEC §4.3); the same limits and lockout as the token
    endpoint, and the same answer for an unknown user as for a wrong password. The login's
    ``login_succeeded`` commits with the session row (SPEC §6)."""
    bastion = bastion_of(request)
    login = await bastion.accounts.verify_login(body.username, body.password, via="session")
    if login is None:
        raise InvalidCredentials()
    token = await bastion.sessions.create(
        login.user.id,
        login.user.username,
        also=partial(bastion.accounts.complete_login, login=login),
    )
    csrf_token = csrf_token_for(token, bastion.csrf_key)
    secure = request_scheme(request) == "https" or not bastion.settings.insecure_http_cookies
    session_name, csrf_name = cookie_names(secure=secure)
    lifetime = bastion.sessions.absolute_seconds
    response.set_cookie(
        session_name,
        token,
        max_age=lifetime,
        path="/",
        secure=secure,
        httponly=True,
        samesite=SAME_SITE,
    )
    response.set_cookie(
        csrf_name,
        csrf_token,
        max_age=lifetime,
        path="/",
        secure=secure,
        httponly=False,
        samesite=SAME_SITE,
    )
    response.headers.update(NO_STORE)
    return SessionCreated(csrf_token=csrf_token)


@router.delete("/session", status_code=204)
async def end_session(request: Request) -> Response:
    """End the session server-side and clear both cookies. Without a live session there is
    nothing to end, and the answer is the same 204 (logout is idempotent); with one, the CSRF
    token is required like for any unsafe request."""
    bastion = bastion_of(request)
    authenticator = bastion.authenticator
    token = authenticator.session_token(request.headers)
    if token is not None:
        try:
            principal = await authenticator.principal_from_session(
                token, request.headers, request.method, ("session",)
            )
        except InvalidSession:
            pass
        else:
            await bastion.sessions.revoke(token, principal.username)
    response = Response(status_code=204, headers=NO_STORE)
    clear_session_cookies(response)
    return response


def request_scheme(request: Request) -> str:
    """The scheme the client used: the edge's answer (trusted proxies applied), else the URL's."""
    state = request.scope.get("state") or {}
    return str(state.get("scheme") or request.url.scheme)


def clear_session_cookies(response: Response) -> None:
    for secure in (True, False):
        for name in cookie_names(secure=secure):
            response.delete_cookie(name, path="/", secure=secure, samesite=SAME_SITE)
