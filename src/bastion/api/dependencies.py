"""FastAPI dependencies: the Bastion instance, authentication requirements and repositories.

Every dependency on the request path is ``async def``: a plain ``def`` runs in the threadpool,
which SPEC §8's measurements put at about a third of the throughput.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from inspect import Parameter, Signature
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie, APIKeyHeader, APIKeyQuery, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import BaseRoute

from bastion.authz import Requirement
from bastion.errors import RateLimited, UnsupportedMediaType
from bastion.principal import Principal
from bastion.ratelimit.limiter import FailureMode
from bastion.ratelimit.middleware import record
from bastion.ratelimit.policies import Policy
from bastion.storage.repositories.items import ItemRepository

if TYPE_CHECKING:
    from bastion.core import Bastion

TOKEN_URL = "/auth/token"  # noqa: S105 - a URL, not a secret

bearer_scheme = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    scheme_name="OAuth2PasswordBearer",
    description="OAuth2 password grant; send the access token as `Authorization: Bearer …`.",
)
"""Declares the password flow in OpenAPI so that the docs' "Authorize" dialog works. Reading the
header is done by the authenticator, not by this object."""


api_key_header_scheme = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ApiKeyAuth",
    description="An API key (`bst_…`) created with `POST /auth/keys`.",
)
api_key_query_scheme = APIKeyQuery(
    name="api_key",
    auto_error=False,
    scheme_name="ApiKeyQuery",
    description="An API key in the URL; only on routes that opt in (download links, webhooks).",
)


session_cookie_scheme = APIKeyCookie(
    name="__Host-bastion_session",
    auto_error=False,
    scheme_name="SessionCookie",
    description="Cookie session from `POST /auth/session`; unsafe methods need `X-CSRF-Token`.",
)


def bastion_of(request: Request) -> Bastion:
    """The :class:`Bastion` that protects this app (set by ``Bastion.protect``)."""
    bastion: Bastion = request.app.state.bastion
    return bastion


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

    async def authenticated_principal(request: Request, **_declared: object) -> Principal:
        bastion = bastion_of(request)
        query_key = request.query_params.get("api_key") if read_query else None
        principal = await bastion.authenticator.authenticate(
            request.headers, accepted, method=request.method, query_api_key=query_key
        )
        request.state.principal = principal
        bastion.metrics.authentications.labels(principal.kind.value, "success").inc()
        await enforce(request, bastion.principal_policy, principal.subject)
        if principal.rate_limit is not None:
            await enforce(
                request, Policy.parse("key", principal.rate_limit), principal.credential_id
            )
        if route_policy is not None:
            await enforce(request, route_policy, f"{route_template(request)}|{principal.subject}")
        requirement.check(principal)
        return principal

    authenticated_principal.__signature__ = _declared_signature(  # type: ignore[attr-defined]
        scopes, accepted, read_query
    )
    authenticated_principal.bastion_scopes = requirement.scopes  # type: ignore[attr-defined]
    return Depends(authenticated_principal)


def scopes_required_by(routes: Iterable[BaseRoute]) -> set[str]:
    """Every scope a ``require(...)`` on these routes asks for, found in their dependency
    trees (an app's own scopes, such as ``reports:read``, are declared nowhere else)."""
    found: set[str] = set()
    pending: list[Dependant] = [r.dependant for r in routes if isinstance(r, APIRoute)]
    while pending:
        dependant = pending.pop()
        found.update(getattr(dependant.call, "bastion_scopes", ()))
        pending.extend(dependant.dependencies)
    return found


def _declared_signature(scopes: Sequence[str], schemes: Sequence[str], query: bool) -> Signature:
    """The parameters FastAPI sees: ``request`` plus one security parameter per accepted
    scheme, which is how OpenAPI learns each route's schemes. Their values are not used: the
    authenticator reads the headers itself, once."""
    params = [Parameter("request", Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]

    def declare(name: str, scheme: Any, **extra: Any) -> None:
        params.append(
            Parameter(
                name,
                Parameter.KEYWORD_ONLY,
                default=Security(scheme, **extra),
                annotation=str | None,
            )
        )

    if "bearer" in schemes:
        declare("_bearer", bearer_scheme, scopes=list(scopes))
    if "api_key" in schemes:
        declare("_api_key", api_key_header_scheme)
    if query:
        declare("_api_key_query", api_key_query_scheme)
    if "session" in schemes:
        declare("_session", session_cookie_scheme)
    return Signature(params, return_annotation=Principal)


def route_template(request: Request) -> str:
    """The matched route's path template (``/items/{item_id}``), never the raw path."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else request.scope["path"]


async def enforce(
    request: Request, policy: Policy, key: str, *, on_error: FailureMode | None = None
) -> None:
    """Count this request under ``policy``; 429 when over (the fields are added at the edge)."""
    bastion = bastion_of(request)
    mode = on_error or bastion.settings.ratelimit_on_error or "open"
    decision = await bastion.limiter.hit(policy, key, on_error=mode)
    record(request.scope, decision)
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
