"""FastAPI dependencies: the Bastion instance, authentication requirements and repositories.

Every dependency on the request path is ``async def``: a plain ``def`` runs in the threadpool,
which SPEC §8's measurements put at about a third of the throughput.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import fastapi.routing
from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie, APIKeyHeader, APIKeyQuery, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import BaseRoute

from bastion.api.routing import expand
from bastion.authn import credential_headers
from bastion.authz import Requirement
from bastion.errors import RateLimited, UnsupportedMediaType
from bastion.principal import Principal
from bastion.ratelimit.ip_limit import record
from bastion.ratelimit.limiter import FailureMode
from bastion.ratelimit.policies import Policy, policy_for
from bastion.storage.repositories.items import ItemRepository

if TYPE_CHECKING:
    from bastion.core import Bastion

TOKEN_URL = "/auth/token"  # noqa: S105 - a URL, not a secret

BEARER_SCHEME_NAME = "OAuth2PasswordBearer"
API_KEY_SCHEME_NAME = "ApiKeyAuth"
API_KEY_QUERY_SCHEME_NAME = "ApiKeyQuery"
SESSION_SCHEME_NAME = "SessionCookie"

bearer_scheme = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    scheme_name=BEARER_SCHEME_NAME,
    description="OAuth2 password grant; send the access token as `Authorization: Bearer …`.",
)
"""Declares the password flow in OpenAPI so that the docs' "Authorize" dialog works. Reading the
header is done by the authenticator, not by this object."""


api_key_header_scheme = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name=API_KEY_SCHEME_NAME,
    description="An API key (`bst_…`) created with `POST /auth/keys`.",
)
api_key_query_scheme = APIKeyQuery(
    name="api_key",
    auto_error=False,
    scheme_name=API_KEY_QUERY_SCHEME_NAME,
    description="An API key in the URL; only on routes that opt in (download links, webhooks).",
)


session_cookie_scheme = APIKeyCookie(
    name="__Host-bastion_session",
    auto_error=False,
    scheme_name=SESSION_SCHEME_NAME,
    description="Cookie session from `POST /auth/session`; unsafe methods need `X-CSRF-Token`.",
)


_last_protected: tuple[object, Bastion] | None = None


def bastion_of(request: Request) -> Bastion:
    """The :class:`Bastion` that protects this app (set by ``Bastion.protect``).

    The last app's answer is kept: ``app.state.bastion`` is found only after a failed attribute
    lookup (Starlette's ``State`` answers in ``__getattr__``), which raises and catches an
    exception, and authenticated requests ask up to three times."""
    global _last_protected
    app = request.scope["app"]
    last = _last_protected
    if last is not None and last[0] is app:
        return last[1]
    bastion: Bastion = app.state.bastion
    _last_protected = (app, bastion)
    return bastion


def attach_bastion(app: FastAPI, bastion: Bastion) -> None:
    """Make ``bastion`` the one :func:`bastion_of` finds for ``app``, from now on."""
    global _last_protected
    app.state.bastion = bastion
    _last_protected = None


_NONE = object()

GRANTED = "bastion.granted"
"""The scope key of the principals each ``require()`` gave this request, by the requirement:
asked again in the same request (a route's guard, a sub-dependency's, a router's), it answers
without counting the request against the limits a second time. FastAPI's own cache does this
within one solving; a :class:`~bastion.api.guarded.GuardedRoute` runs guards outside it."""

COUNTED = "bastion.counted"
"""The scope key of the limit counters this request has hit: each counts a request once, however
many ``require()``s on its route ask for the same limit (the per-principal one, a key's own)."""

DEFAULT_SCHEMES = ("bearer", "api_key", "session")
"""What a route accepts unless it says otherwise (SPEC §2.3: several schemes on one route)."""


def require(
    *scopes: str,
    roles: Sequence[str] = (),
    schemes: Sequence[str] = DEFAULT_SCHEMES,
    rate: str | None = None,
    api_key_in_query: bool = False,
) -> Any:
    """A dependency giving the authenticated :class:`Principal`, or 401/403 (SPEC §2.3–2.4).

    ``require()`` with no scope means "any authenticated caller". Every authenticated request
    counts toward the per-principal limit (and an API key's own limit, if it has one);
    ``rate="10/minute"`` adds a limit of this route per principal (SPEC §2.2), keyed by the
    route's template so that spellings of one path share it. ``api_key_in_query=True`` lets
    this route, and only this route, take ``?api_key=`` (download links, webhooks: SPEC §4.4).
    """
    requirement = Requirement(frozenset(scopes), frozenset(roles))
    accepted = tuple(schemes)
    route_policy = Policy.parse("route", rate) if rate else None
    read_query = api_key_in_query and "api_key" in accepted

    async def authenticated_principal(request: Request) -> Principal:
        scope = request.scope
        granted = scope.setdefault(GRANTED, {})
        if (found := granted.get(authenticated_principal, _NONE)) is not _NONE:
            return found  # type: ignore[no-any-return]  # an override's value may be anything
        bastion = bastion_of(request)
        query_key = request.query_params.get("api_key") if read_query else None
        principal = await bastion.authenticator.authenticate(
            credential_headers(scope["headers"]),
            accepted,
            method=request.method,
            query_api_key=query_key,
        )
        # request.state's own dict, without building Starlette's State wrapper for one write
        scope.setdefault("state", {})["principal"] = principal
        bastion.metrics.count_authentication(principal.kind.value, "success")
        await enforce(request, bastion.principal_policy, principal.subject)
        if principal.rate_limit is not None:
            await enforce(request, policy_for("key", principal.rate_limit), principal.credential_id)
        if route_policy is not None:
            await enforce(request, route_policy, f"{route_template(request)}|{principal.subject}")
        requirement.check(principal)
        granted[authenticated_principal] = principal
        return principal

    authenticated_principal.bastion_security = SecurityDeclaration(  # type: ignore[attr-defined]
        tuple(scopes), accepted, read_query
    )
    return Depends(authenticated_principal)


@dataclass(frozen=True, slots=True)
class SecurityDeclaration:
    """What one ``require(...)`` tells the OpenAPI document: the schemes a route accepts, each
    an alternative (``security`` is a list of them), and the scopes the bearer token needs.

    It is written into the document after FastAPI made it (:mod:`bastion.api.openapi`) instead
    of being declared as ``Security(...)`` parameters: FastAPI would call each of those on every
    request only to read a header the authenticator reads anyway (SPEC §8: ~10 µs apiece)."""

    scopes: tuple[str, ...]
    schemes: tuple[str, ...]
    query: bool

    def requirements(self) -> list[dict[str, list[str]]]:
        alternatives: list[dict[str, list[str]]] = []
        if "bearer" in self.schemes:
            alternatives.append({BEARER_SCHEME_NAME: list(self.scopes)})
        if "api_key" in self.schemes:
            alternatives.append({API_KEY_SCHEME_NAME: []})
        if self.query:
            alternatives.append({API_KEY_QUERY_SCHEME_NAME: []})
        if "session" in self.schemes:
            alternatives.append({SESSION_SCHEME_NAME: []})
        return alternatives


def _dependants(route: APIRoute) -> Iterator[Dependant]:
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        yield dependant
        pending.extend(dependant.dependencies)


def security_of(route: APIRoute) -> SecurityDeclaration | None:
    """What the ``require(...)``s this route depends on ask for together, if any: a router's
    and a parameter's, say, whether FastAPI solves them or a
    :class:`~bastion.api.guarded.GuardedRoute` runs them. Every scope of every one is needed,
    and a scheme counts only when each of them accepts it."""
    calls = [dependant.call for dependant in _dependants(route)]
    calls += getattr(route, "bastion_guards", ())  # those a GuardedRoute runs itself
    found = [
        declaration
        for call in calls
        if isinstance(declaration := getattr(call, "bastion_security", None), SecurityDeclaration)
    ]
    if not found:
        return None
    scopes = sorted({scope for d in found for scope in d.scopes})
    schemes = tuple(s for s in found[0].schemes if all(s in d.schemes for d in found))
    return SecurityDeclaration(tuple(scopes), schemes, all(d.query for d in found))


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[tuple[str, set[str], APIRoute]]:
    """``(path, methods, route)`` of every API route, those of groups and included routers
    too. FastAPI 0.165 keeps an included router as one node (``iter_route_contexts`` walks it);
    earlier versions copied its routes into the app's list."""
    flat = list(expand(routes))
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    contexts: Iterable[Any] = walk(flat) if walk is not None else flat
    for context in contexts:
        route = getattr(context, "original_route", context)
        if isinstance(route, APIRoute):
            yield str(context.path_format), set(context.methods or ()), route


def scopes_required_by(routes: Iterable[BaseRoute]) -> set[str]:
    """Every scope a ``require(...)`` on these routes asks for, found in their dependency
    trees (an app's own scopes, such as ``reports:read``, are declared nowhere else)."""
    found: set[str] = set()
    for _, _, route in api_routes(routes):
        if (declaration := security_of(route)) is not None:
            found.update(declaration.scopes)
    return found


SECURITY_SCHEMES = {
    BEARER_SCHEME_NAME: bearer_scheme,
    API_KEY_SCHEME_NAME: api_key_header_scheme,
    API_KEY_QUERY_SCHEME_NAME: api_key_query_scheme,
    SESSION_SCHEME_NAME: session_cookie_scheme,
}
"""Scheme name → the FastAPI security object whose OpenAPI model describes it."""


def route_template(request: Request) -> str:
    """The matched route's path template (``/items/{item_id}``), never the raw path."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else request.scope["path"]


async def enforce(
    request: Request, policy: Policy, key: str, *, on_error: FailureMode | None = None
) -> None:
    """Count this request under ``policy``; 429 when over (the fields are added at the edge)."""
    scope = request.scope
    counted: set[str] = scope.setdefault(COUNTED, set())
    storage_key = policy.storage_key(key)
    if storage_key in counted:
        return  # this request already counts here (two require()s on one route, say)
    bastion = bastion_of(request)
    mode = on_error or bastion.settings.ratelimit_on_error or "open"
    decision = await bastion.limiter.hit(policy, key, on_error=mode)
    counted.add(storage_key)
    record(scope, decision)
    if not decision.is_allowed:
        raise RateLimited(decision.reset_after, policy=policy.name)


async def require_json(request: Request) -> None:
    """415 for a JSON route called with another content type (SPEC §3), before validation
    could report the body as a confusing 422."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise UnsupportedMediaType()


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent (``scope="function"``
    below), so a client never sees 201 for a row that then fails to commit."""
    async with bastion_of(request).db.transaction() as session:
        yield session


Session = Annotated[AsyncSession, Depends(db_session, scope="function")]


async def item_repository(session: Session) -> ItemRepository:
    return ItemRepository(session)


Items = Annotated[ItemRepository, Depends(item_repository)]
JSONBody = Depends(require_json)
