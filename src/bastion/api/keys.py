"""``/auth/keys``: the caller's own API keys (SPEC §4.4). Another user's key is a 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from bastion.api.dependencies import JSONBody, bastion_of, require
from bastion.api.guarded import GuardedRoute
from bastion.api.schemas import ApiKeyCreate, ApiKeyIssued, ApiKeyList, ApiKeyOut
from bastion.errors import NO_STORE, InsufficientScope, ValidationFailed
from bastion.key_service import IssuedKey, prefix_of
from bastion.principal import CredentialKind, Principal
from bastion.ratelimit.policies import InvalidRateLimit, Policy
from bastion.storage.models import ApiKey

router = APIRouter(prefix="/auth/keys", tags=["api keys"], route_class=GuardedRoute)

Manager = Annotated[Principal, require("keys:manage")]


@router.post("", status_code=201, response_model=ApiKeyIssued)
async def create_key(
    request: Request,
    principal: Manager,
    _json: Annotated[None, JSONBody],
    body: ApiKeyCreate,
    response: Response,
) -> ApiKeyIssued:
    """Scopes default to, and may only narrow, those of the credential creating the key."""
    bastion = bastion_of(request)
    scopes = frozenset(body.scopes) if body.scopes is not None else principal.scopes
    if not scopes <= principal.scopes:
        raise InsufficientScope(
            scopes - principal.scopes,
            bearer=principal.kind is CredentialKind.BEARER,
            detail="An API key cannot have a scope that the credential creating it lacks.",
        )
    max_days = bastion.settings.api_key_max_days
    days = body.expires_in_days if body.expires_in_days is not None else max_days
    if days > max_days:
        raise _invalid("expires_in_days", f"An API key may live at most {max_days} days.")
    if body.rate_limit is not None:
        try:
            Policy.parse("key", body.rate_limit)
        except InvalidRateLimit as exc:
            raise _invalid("rate_limit", str(exc)) from None
    issued = await bastion.api_keys.create(
        principal.user_id, principal.username, body.name, scopes, days, body.rate_limit
    )
    response.headers.update(NO_STORE)
    return _issued(issued)


@router.get("", response_model=ApiKeyList)
async def list_keys(request: Request, principal: Manager) -> ApiKeyList:
    keys = await bastion_of(request).api_keys.list_owned(principal.user_id)
    return ApiKeyList(items=[api_key_out(k) for k in keys])


@router.delete("/{key_id}", status_code=204)
async def revoke_key(request: Request, key_id: str, principal: Manager) -> Response:
    await bastion_of(request).api_keys.revoke(principal.user_id, principal.username, key_id)
    return Response(status_code=204)


@router.post("/{key_id}/rotate", response_model=ApiKeyIssued)
async def rotate_key(
    request: Request, key_id: str, principal: Manager, response: Response
) -> ApiKeyIssued:
    issued = await bastion_of(request).api_keys.rotate(
        principal.user_id, principal.username, key_id
    )
    response.headers.update(NO_STORE)
    return _issued(issued)


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        [{"loc": ["body", field], "msg": message, "type": "value_error"}], detail=message
    )


def api_key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        prefix=prefix_of(key),
        scopes=sorted(key.scopes.split()),
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


def _issued(issued: IssuedKey) -> ApiKeyIssued:
    key = issued.record
    return ApiKeyIssued(
        id=key.id,
        name=key.name,
        key=issued.key,
        prefix=prefix_of(key),
        scopes=sorted(key.scopes.split()),
        created_at=key.created_at,
        expires_at=key.expires_at,
    )
